"""Structured logging: one JSON object per line in every role, stamped with the time in UTC
(RFC 3339 with its offset) and the current request id."""
import logging
from datetime import UTC, datetime

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from .context import request_id_var


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(_JsonFormatter):
    """``time`` as ``2026-01-02T03:04:05.678+00:00`` whatever the machine's time zone."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 -- logging's name
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


_WS_EVENTS = {"connecting": "WSCONNECTING", "connected": "WSCONNECT", "rejected": "WSREJECT", "disconnected": "WSDISCONNECT"}


def _daphne_log_action(server, protocol, action, details) -> None:
    """daphne's access log as JSON lines of ``bourse.access``. HTTP requests are logged by
    ``exchange.middleware.MetricsMiddleware`` (with the request id and route), so daphne's
    own line for them is dropped; WebSocket handshakes and closes are logged here."""
    from django.conf import settings

    if protocol != "websocket" or not settings.BOURSE_ACCESS_LOG:
        return
    event = _WS_EVENTS.get(action, action)
    access_log.info("%s %s", event, details.get("path"),
                    extra={"event": event, "path": details.get("path"), "peer": details.get("client")})


access_log = logging.getLogger("bourse.access")


def install_daphne_access_log() -> bool:
    """Replace daphne's text access log (stdout, whatever ``--access-log`` says) with
    ``_daphne_log_action``; False when daphne is not installed."""
    try:
        from daphne.server import Server
    except ImportError:  # pragma: no cover
        return False
    Server.log_action = _daphne_log_action
    return True
