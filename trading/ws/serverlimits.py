"""Frames above daphne's own maximum get the documented ``payload_too_large``.

daphne (autobahn) refuses a message over its ``--websocket_max_message_size`` (1 MiB) before
the ASGI application sees it, by failing the connection with 1009 and no explanation. This
hook, installed into daphne's protocol class by ``exchange.asgi`` (so only where daphne
serves the application), sends the error frame every other refusal sends, then closes with
the application close code ``4009``; the rest of the oversized message is discarded unread,
so nothing is buffered beyond the limit. The consumer's own, smaller limit
(``BOURSE_WS_MAX_FRAME_BYTES``) answers the same error without closing.
"""
from __future__ import annotations

import json
import logging

log = logging.getLogger("bourse.ws")

CLOSE_PAYLOAD_TOO_LARGE = 4009


def _max_message_size_exceeded(self, msg_size, max_msg_size, reason) -> None:
    if self.state != self.STATE_OPEN or self.failedByMe:
        return
    frame = {"type": "error", "code": "payload_too_large", "id": None, "limit": max_msg_size,
             "message": f"Messages are limited to {max_msg_size} bytes by the server; closing."}
    self.failedByMe = True  # autobahn then drops the rest of the message instead of buffering it
    try:
        self.sendMessage(json.dumps(frame).encode(), isBinary=False)
        self.sendCloseFrame(code=CLOSE_PAYLOAD_TOO_LARGE, reasonUtf8=b"payload_too_large", isReply=False)
    except Exception:  # noqa: BLE001 - fall back to autobahn's own refusal
        log.exception("could not refuse an oversized websocket message cleanly")
        self.dropConnection(abort=True)


def install() -> bool:
    """Hook the refusal into daphne's WebSocket protocol; False when daphne is not present."""
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # pragma: no cover - another ASGI server: its own limits apply
        return False
    WebSocketProtocol._max_message_size_exceeded = _max_message_size_exceeded
    return True
