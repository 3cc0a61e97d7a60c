"""``python manage.py serve_metrics [--host H] [--port P]``: ``/metrics`` for a machine that
runs no web process (an engine-only or FIX-only host).

Every Bourse process on a machine counts into the same ``PROMETHEUS_MULTIPROC_DIR``; a web
process there reports the sum at ``/metrics``. A machine without one runs this instead: a
small HTTP server answering ``GET /metrics`` with that machine's sum (batch sizes, commit
times, FIX messages, ...), under the same access rule as the web endpoint — a client address
in ``BOURSE_METRICS_ALLOW`` or ``Authorization: Bearer`` ``BOURSE_METRICS_TOKEN``; anyone else
gets 403 problem+json. The database-derived numbers (queue depth, lags, heartbeats) are in
every web scrape already, so this server needs neither the database nor Redis. Bind it to an
internal address.
"""
from __future__ import annotations

import json
import logging
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.conf import settings

from exchange import metrics, preflight
from exchange.management.base import RoleCommand

log = logging.getLogger("bourse.metrics")


class MetricsHandler(BaseHTTPRequestHandler):
    server_version = "bourse-metrics"

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path.split("?", 1)[0] != "/metrics":
            return self._problem(404, "not_found", "Not found", "Only /metrics is served here.")
        if not metrics.allowed(
            self.client_address[0], self.headers.get("Authorization", ""), forwarded_by_untrusted=False,
            allow=settings.BOURSE_METRICS_ALLOW, token=settings.BOURSE_METRICS_TOKEN,
        ):
            return self._problem(
                403, "permission_denied", "Permission denied",
                "The metrics endpoint is internal: scrape it from an address in BOURSE_METRICS_ALLOW or with "
                "'Authorization: Bearer' and BOURSE_METRICS_TOKEN.",
            )
        body, content_type = metrics.exposition()
        self._send(200, content_type, body)

    def _problem(self, status: int, code: str, title: str, detail: str) -> None:
        body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail, "code": code})
        self._send(status, "application/problem+json", body.encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        pass  # scrapes are not worth a log line each


class Command(RoleCommand):
    help = "Serve this machine's /metrics without a web process (engine-only or FIX-only hosts)."
    role = "metrics"
    needs_database = False
    needs_redis = False

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9108)

    def handle(self, *args, host, port, **options):
        preflight.check_port("--port", host, port)
        if metrics.multiprocess_dir() is None:
            log.warning("PROMETHEUS_MULTIPROC_DIR is not set: only this process's own (empty) counters can be served")
        server = ThreadingHTTPServer((host, port), MetricsHandler)
        server.daemon_threads = True
        def on_signal(signum, frame):
            threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        log.info("serving metrics on %s:%s", host, server.server_address[1])
        server.serve_forever(poll_interval=0.5)
        server.server_close()
