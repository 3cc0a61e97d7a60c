"""Limits daphne cannot be told from its command line, installed where it serves Bourse.

**Request bodies are refused before they are buffered.** Twisted (under daphne) reads a whole
request body into memory or a temporary file before the ASGI application, and so
``exchange.bodylimit``, sees any of it: a 1.5 GiB upload would fill the disk first. Here a
declared ``Content-Length`` over the limit is answered 413 ``payload_too_large`` at once and
the connection closed unread; a body without a declared length (chunked) is cut, with the
same answer, as soon as it passes the limit. The limit is ``BOURSE_MAX_BODY_BYTES`` under
``/api/`` and Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` elsewhere (the admin console).

**Slow clients cannot hold connections.** Each request must arrive whole (headers and body)
within ``BOURSE_HTTP_REQUEST_TIMEOUT_S`` of the connection opening or of the previous
response; a client that trickles bytes (slowloris) gets 408 and is disconnected, and an idle
keep-alive connection is closed silently at that point. daphne is
asynchronous, so a slow client never holds a worker: only a socket, for that long.

**What the server refuses, it refuses in the API's words.** A request head over 16 KiB (one
line or all of them), bytes that are not HTTP, a malformed request line or chunk, a header name
or value daphne will not pass on, a path or query string that is not ASCII: Twisted answered a
bare 400 (or, for one line over 16 KiB, closed without a word) and daphne an HTML page. Each is
answered 400 ``bad_request`` with the problem body and an ``X-Request-ID``, as the ``web`` role
(``exchange/webserver.py``) answers the same bytes; daphne's 500 and 503 pages become
``internal_error`` and ``service_unavailable`` problem bodies.

**WebSocket frames above daphne's own maximum get the documented ``payload_too_large``.**
daphne (autobahn) refuses a message over its ``--websocket_max_message_size`` (1 MiB) before
the ASGI application sees it, by failing the connection with 1009 and no explanation. This
hook, installed into daphne's protocol class by ``exchange.asgi`` (so only where daphne
serves the application), sends the error frame every other refusal sends, then closes with
the application close code ``4009``; the rest of the oversized message is discarded unread,
so nothing is buffered beyond the limit. The consumer's own, smaller limit
(``BOURSE_WS_MAX_FRAME_BYTES``) answers the same error without closing.

**A client has time to read why it was closed.** When the server closes a WebSocket (a policy
close, a revoked key, a shutdown), autobahn waits for the client's close frame and then aborts
the TCP connection (a reset). Its default wait is 1 s: a client stalled for a second (a busy
machine, a congested link) got the reset before it had answered, and a reset can take the
error frame that explained the close with it (the kernel may drop unread data; the
``websockets`` client drops the frames of the read whose close answer failed). The wait is
``BOURSE_WS_CLOSE_TIMEOUT_S`` (5 s); the connection's slots are released at the close itself,
so a slow closer holds only its socket for that long.
"""
from __future__ import annotations

import json
import logging
import uuid

from django.conf import settings

from . import errors

log = logging.getLogger("bourse.server")

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


MAX_HEAD_BYTES = 16384  # the request line and headers of one request, on either server
HEAD_TOO_LARGE = f"The request line and headers are limited to {MAX_HEAD_BYTES} bytes."


def problem_body(error: errors.BourseError) -> tuple[str, bytes]:
    """A new request id and ``error``'s problem body naming it: what either server answers
    with when it refuses a request itself, before or instead of the application."""
    request_id = uuid.uuid4().hex
    return request_id, json.dumps(error.as_problem(request_id)).encode()


def http_refusal(error: errors.BourseError, reason: str) -> bytes:
    """The whole HTTP answer, problem body and ``Connection: close``, with which either server
    refuses a request before the application sees it (413, 408, 400)."""
    request_id, body = problem_body(error)
    head = (f"HTTP/1.1 {error.status} {reason}\r\nContent-Type: application/problem+json\r\n"
            f"Content-Length: {len(body)}\r\nX-Request-ID: {request_id}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


def body_limit(path: bytes) -> int:
    if path.startswith(b"/api/"):
        return settings.BOURSE_MAX_BODY_BYTES
    return max(settings.BOURSE_MAX_BODY_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2621440)


def _refuse_body(request) -> None:
    if request._bourse_refused:
        return
    request._bourse_refused = True
    limit = request._bourse_limit
    log.warning("request body over the limit refused before buffering",
                extra={"limit": limit, "declared": request._bourse_declared})
    transport = request.channel.transport
    transport.write(http_refusal(errors.PayloadTooLarge(f"Request bodies are limited to {limit} bytes."),
                                  "Payload Too Large"))
    transport.loseConnection()


def install() -> bool:
    """Install the hooks into daphne's HTTP and WebSocket protocols; False when daphne is not
    present (another server: its own limits apply)."""
    try:
        from daphne.http_protocol import HTTPFactory, WebRequest
        from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
        from twisted.internet import reactor
        from twisted.web import http
    except ImportError:  # pragma: no cover
        return False

    WebSocketProtocol._max_message_size_exceeded = _max_message_size_exceeded

    ws_factory_init = WebSocketFactory.__init__
    close_timeout = settings.BOURSE_WS_CLOSE_TIMEOUT_S

    def ws_factory_init_with_close_timeout(self, *args, **kwargs):
        ws_factory_init(self, *args, **kwargs)
        # daphne's own setProtocolOptions (in Server.run) names other options only: this stays.
        self.setProtocolOptions(closeHandshakeTimeout=close_timeout)

    WebSocketFactory.__init__ = ws_factory_init_with_close_timeout

    got_length, handle_chunk = WebRequest.gotLength, WebRequest.handleContentChunk

    def gotLength(self, length):  # noqa: N802 - Twisted's name
        self._bourse_limit = body_limit(getattr(self.channel, "_path", b"") or b"")
        self._bourse_declared, self._bourse_received, self._bourse_refused = length, 0, False
        if length is not None and length > self._bourse_limit:
            got_length(self, 0)  # an in-memory buffer that will stay empty
            _refuse_body(self)
            return
        got_length(self, length)

    def handleContentChunk(self, data):  # noqa: N802
        if self._bourse_refused:
            return  # the rest of a refused body is dropped as it arrives
        self._bourse_received += len(data)
        if self._bourse_received > self._bourse_limit:
            _refuse_body(self)
            return
        handle_chunk(self, data)

    WebRequest.gotLength, WebRequest.handleContentChunk = gotLength, handleContentChunk

    web_request_init = WebRequest.__init__

    def __init__(self, *args, **kwargs):  # noqa: N807
        web_request_init(self, *args, **kwargs)
        # daphne hands the application the body as bytes and never reads ``request.args``:
        # Twisted's own parsing of form bodies into it (multipart, urlencoded) was pure cost
        # on the event loop for every POST (its Content-Type parse through the email package
        # alone was ~5 % of a REST process's CPU under order load), and a body it could not
        # parse got a bare 400 of Twisted's and a dropped connection before the application
        # and its error contract saw the request.
        self._parsePOSTFormSubmission = False

    WebRequest.__init__ = __init__

    def basic_error(self, status, status_text, body):
        """daphne's own answers — a header name or value it will not pass on, a path or query
        string that is not ASCII (400), the application failing or not answering (500, 503) —
        with the API's problem body and ``X-Request-ID``, not daphne's HTML page."""
        if status == 400:
            error: errors.BourseError = errors.BadRequest(f"The request is not valid HTTP/1.1: {body.lower()}.")
        elif status == 503:
            error = errors.ServiceUnavailable()
        else:
            error = errors.ServerError()
        request_id, problem = problem_body(error)
        self.handle_reply({"type": "http.response.start", "status": error.status, "headers": [
            (b"Content-Type", b"application/problem+json"), (b"X-Request-ID", request_id.encode())]})
        self.handle_reply({"type": "http.response.body", "body": problem})

    WebRequest.basic_error = basic_error

    request_timeout = settings.BOURSE_HTTP_REQUEST_TIMEOUT_S  # read once: every request arms it

    class DeadlineHTTPChannel(http.HTTPChannel):
        """An HTTP connection whose every request must arrive within the request timeout."""

        _bourse_deadline = None
        _bourse_receiving = False

        def connectionMade(self):  # noqa: N802
            super().connectionMade()
            self._bourse_arm()

        def dataReceived(self, data):  # noqa: N802
            if data:
                self._bourse_started = True
            super().dataReceived(data)

        def _bourse_arm(self):
            self._bourse_started = False
            self._bourse_receiving = True
            if request_timeout <= 0:
                return
            if self._bourse_deadline is not None and self._bourse_deadline.active():
                # Moved later in place: cheaper than a cancel and a new timer per request.
                self._bourse_deadline.reset(request_timeout)
            else:
                self._bourse_deadline = reactor.callLater(request_timeout, self._bourse_too_slow)

        def _bourse_disarm(self):
            if self._bourse_deadline is not None and self._bourse_deadline.active():
                self._bourse_deadline.cancel()
            self._bourse_deadline = None

        def allContentReceived(self):  # noqa: N802 - the request arrived whole in time
            # The timer stays (it fires harmlessly while the request is served) and the next
            # request's arm moves it later in place: no cancel and new timer per request.
            self._bourse_receiving = False
            super().allContentReceived()

        def requestDone(self, request):  # noqa: N802 - the next request's clock starts now
            super().requestDone(request)
            if self.transport is not None and not getattr(self.transport, "disconnecting", False):
                self._bourse_arm()

        def connectionLost(self, reason):  # noqa: N802
            self._bourse_disarm()
            super().connectionLost(reason)

        def _respondToBadRequestAndDisconnect(self):  # noqa: N802
            """Twisted's refusal of what it cannot parse (a request line or header that is
            not HTTP, a head over 16 KiB, a malformed chunk): the problem body, not a bare 400."""
            if self._receivedHeaderSize > self.totalHeadersSize:
                self._bourse_bad_request(HEAD_TOO_LARGE)
            else:
                self._bourse_bad_request("The request is not valid HTTP/1.1.")

        def lineLengthExceeded(self, line):  # noqa: N802 - one line past 16 KiB: Twisted closed silently
            self._bourse_bad_request(HEAD_TOO_LARGE)

        def _bourse_bad_request(self, detail: str) -> None:
            if self.transport is None or getattr(self.transport, "disconnecting", False):
                return
            self._bourse_receiving = False
            self.transport.write(http_refusal(errors.BadRequest(detail), "Bad Request"))
            self.transport.loseConnection()

        def _bourse_too_slow(self):
            self._bourse_deadline = None
            if not self._bourse_receiving:
                return  # the request arrived whole and is being served: the next one re-arms
            if not self._bourse_started:  # an idle keep-alive connection: closed silently, as is usual
                self.transport.loseConnection()
                return
            log.info("slow HTTP client disconnected", extra={"timeout_s": settings.BOURSE_HTTP_REQUEST_TIMEOUT_S})
            self.transport.write(http_refusal(errors.RequestTimeout(
                f"A request must arrive whole within {settings.BOURSE_HTTP_REQUEST_TIMEOUT_S:g} s."), "Request Timeout"))
            self.transport.loseConnection()

    HTTPFactory.protocol = DeadlineHTTPChannel

    def no_access_line(self, request):
        """No line of Twisted's own. Twisted formats a combined-log-format line for every
        request and writes it to its log, which daphne discards below verbosity 2 and which
        would repeat daphne's access log (written as JSON lines: ``exchange/logging.py``):
        ~2.6 % of a REST process's CPU under order load, by py-spy."""

    HTTPFactory.log = no_access_line
    return True
