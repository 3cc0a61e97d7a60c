"""The REST server process: uvicorn (httptools, uvloop) serving ``exchange.asgi``, with
Bourse's server limits.

``manage.py serve_http`` binds the listening sockets and starts one of these per socket
(``python -m exchange.webserver --fd N``). Measured beside daphne on the same application
(bench/order_path.md, "uvicorn beside daphne"): the REST processes' CPU per placement 1.56
against 1.94 ms, because httptools parses in C and uvloop runs the loop where Twisted's HTTP
parsing and its asyncio bridge ran in Python. WebSocket stays on daphne (the ``ws`` role,
``exchange/serverlimits.py``); this server answers an upgrade as a plain request (404).

What daphne gets from ``exchange.serverlimits`` and ``exchange.serving``, this process has
too, at the same place — the connection, before the application:

- **Bodies are refused before they are buffered**: a declared ``Content-Length`` over the
  limit (``BOURSE_MAX_BODY_BYTES`` under ``/api/``, Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``
  elsewhere) is answered 413 ``payload_too_large`` at once and the connection closed unread;
  a chunked body is cut the same way as soon as it passes the limit.
- **Slow clients cannot hold connections**: each request must arrive whole within
  ``BOURSE_HTTP_REQUEST_TIMEOUT_S`` of the connection opening or of the previous response;
  a client that trickles bytes gets 408 ``request_timeout`` and is disconnected, an idle
  keep-alive connection is closed silently at that point. (uvicorn's own keep-alive timer,
  which covers only the idle case and in whole seconds, runs only when the deadline is 0.)
- **A request head is at most 16 KiB** (the request line and headers, as Twisted's under
  daphne): past it, 400 ``bad_request`` and the connection closed — httptools sets no limit,
  and headers trickled within the deadline would pile up in memory. Bytes that are not HTTP
  get the same problem body instead of uvicorn's text.
- **Start-up checks before it serves**: a database or Redis it cannot reach stops it with
  one line and exit 69; a malformed setting with exit 78 (``exchange.preflight``).
- **SIGTERM/SIGINT drain**: it stops accepting, closes idle keep-alive connections, lets
  every request in flight finish (an order waiting for the engine's verdict gets its answer;
  its connection is then closed), cancels what is left after ``BOURSE_SHUTDOWN_GRACE_S``,
  and exits 0.
- ``X-Forwarded-For`` is never rewritten into the peer address by the server: the
  application decides whom to believe (``exchange/clientip.py``, ``BOURSE_TRUSTED_PROXIES``).
  No ``Server`` header; HTTP requests are logged by the application's middleware as JSON.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import time

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from . import errors
from .serverlimits import HEAD_TOO_LARGE, MAX_HEAD_BYTES, body_limit, http_refusal

log = logging.getLogger("bourse.server")


class BourseHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools connection with the body limit and the whole-request deadline.

    The deadline is one timer per connection that is never cancelled per request: a request
    completing moves ``_bourse_due`` later, and the timer, when it fires early, sleeps again
    until the new time."""

    request_timeout: float = 10.0  # BOURSE_HTTP_REQUEST_TIMEOUT_S, set by serve(); 0 switches it off
    _bourse_timer: asyncio.TimerHandle | None = None
    _bourse_refused = False
    _bourse_refusal: bytes | None = None  # waits for the answers to the requests before it
    _bourse_head = 0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._bourse_requests = self._bourse_responses = 0  # completed, on this connection
        self._bourse_started = False  # a byte of the awaited request has arrived
        self._bourse_limit = self._bourse_received = 0
        self._bourse_arm()

    def connection_lost(self, exc) -> None:
        if self._bourse_timer is not None:
            self._bourse_timer.cancel()
            self._bourse_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._bourse_refused:
            return  # the rest of a refused request is dropped as it arrives
        if data:
            self._bourse_started = True
        super().data_received(data)

    # -- the request head: its size, and what is not HTTP ------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._bourse_head = 0

    def on_url(self, url: bytes) -> None:
        self._bourse_head_grows(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._bourse_head_grows(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _bourse_head_grows(self, size: int) -> None:
        # httptools sets no limit of its own: headers trickled within the deadline would
        # otherwise pile up in memory (Twisted, under daphne, stops at the same 16 KiB).
        self._bourse_head += size
        if self._bourse_head > MAX_HEAD_BYTES and not self._bourse_refused:
            self._bourse_refuse(errors.BadRequest(HEAD_TOO_LARGE), "Bad Request")
            raise httptools.HttpParserError("request head too large")  # stops the parser's feed

    def _unsupported_upgrade_warning(self) -> None:
        """A WebSocket handshake sent to the REST role is answered as a plain request (404: the
        WebSocket API is the ``ws`` role's), without uvicorn's two warnings per attempt, one
        of which tells the operator to install a WebSocket library."""

    def send_400_response(self, msg: str) -> None:
        """Bytes that are not HTTP: the API's problem body (``bad_request``), not uvicorn's text."""
        if self._bourse_refused:
            return  # already answered (the head grew too large) and closing
        self._bourse_refuse(errors.BadRequest("The request is not valid HTTP/1.1."), "Bad Request")

    def _bourse_refuse(self, error, reason: str) -> None:
        """Answer ``error`` and close; what else the client sends is dropped unread.

        When the refused bytes are the body of the request being served (its message not yet
        whole), its application sees a disconnect and the refusal is its answer. A new request
        pipelined behind one still being answered is refused after that answer (and any
        request queued between them), so each answer stays in its request's place."""
        self._bourse_refused = True
        refusal = http_refusal(error, reason)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if not cycle.more_body:  # that request arrived whole: its answer comes first
                self._bourse_refusal = refusal
                self.flow.pause_reading()
                return
            cycle.disconnected = True  # its own body was refused: nothing more of it is answered
        self.transport.write(refusal)
        self.transport.close()

    # -- the body limit -----------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        path = self.url.split(b"?", 1)[0]
        self._bourse_limit, self._bourse_received = body_limit(path), 0
        for name, value in self.headers:
            if name == b"content-length":
                declared = value.strip()
                if declared.isdigit() and int(declared) > self._bourse_limit:
                    self._bourse_refuse_body(int(declared))
                    return
                break
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._bourse_refused:
            return
        self._bourse_received += len(body)
        if self._bourse_received > self._bourse_limit:
            self._bourse_refuse_body(None)
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._bourse_refused:
            return
        self._bourse_requests += 1
        super().on_message_complete()

    def _bourse_refuse_body(self, declared: int | None) -> None:
        limit = self._bourse_limit
        log.warning("request body over the limit refused before buffering",
                    extra={"limit": limit, "declared": declared})
        self._bourse_refuse(errors.PayloadTooLarge(f"Request bodies are limited to {limit} bytes."),
                            "Payload Too Large")

    # -- the whole-request deadline -----------------------------------------------------------

    def on_response_complete(self) -> None:
        """uvicorn's, without its keep-alive timer when the deadline is on: the deadline
        already closes an idle connection, at the configured time (uvicorn's timer takes whole
        seconds, and would be one more timer created and cancelled per response)."""
        self._bourse_responses += 1
        if self._bourse_refusal is not None and not self.pipeline:
            if not self.transport.is_closing():  # the answers before it are out: now the refusal
                self.transport.write(self._bourse_refusal)
                self.transport.close()
            return
        if self.request_timeout <= 0:  # no deadline: uvicorn's timer closes idle connections
            super().on_response_complete()
            return
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:  # the next request pipelined on this connection is served now
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif self._bourse_requests == self._bourse_responses:
            self._bourse_arm()

    def _bourse_arm(self) -> None:
        timeout = self.request_timeout
        self._bourse_started = False
        if timeout <= 0:
            return
        self._bourse_due = self.loop.time() + timeout
        if self._bourse_timer is None:
            self._bourse_timer = self.loop.call_at(self._bourse_due, self._bourse_check)

    def _bourse_check(self) -> None:
        self._bourse_timer = None
        if self.transport.is_closing():
            return
        if self._bourse_requests != self._bourse_responses:
            return  # a request arrived whole and is being served: its response re-arms
        if self.loop.time() < self._bourse_due:  # moved later by a request since
            self._bourse_timer = self.loop.call_at(self._bourse_due, self._bourse_check)
            return
        if not self._bourse_started:  # an idle keep-alive connection: closed silently, as is usual
            self.transport.close()
            return
        timeout = self.request_timeout
        log.info("slow HTTP client disconnected", extra={"timeout_s": timeout})
        self._bourse_refuse(errors.RequestTimeout(f"A request must arrive whole within {timeout:g} s."),
                            "Request Timeout")


class BourseServer(uvicorn.Server):
    """uvicorn's server, whose SIGTERM ends in exit 0 after the drain: uvicorn's own
    re-raises the signal once it has shut down, so a supervisor read a clean drain as
    death by SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self):
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def shutdown(self, sockets=None):
        started = time.monotonic()
        log.info("shutting down: draining", extra={
            "in_flight": len(self.server_state.tasks), "grace_s": self.config.timeout_graceful_shutdown})
        await super().shutdown(sockets=sockets)
        log.info("drained", extra={"seconds": round(time.monotonic() - started, 3)})


def serve(fd: int) -> None:
    """Serve ``exchange.asgi`` on the listening socket ``fd`` until SIGTERM or SIGINT."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")
    from . import preflight

    preflight.load_settings("web", hard=True)
    import django

    django.setup(set_prefix=False)
    preflight.check_or_exit("web", hard=True)
    from django.conf import settings

    from .asgi import application

    sock = socket.socket(fileno=fd)
    config = uvicorn.Config(
        application, http=BourseHttpProtocol, loop="uvloop", ws="none", lifespan="off",
        proxy_headers=False, server_header=False, access_log=False, log_config=None,
        timeout_keep_alive=5,  # idle connections, only when the deadline is switched off (0)
        timeout_graceful_shutdown=max(1, int(settings.BOURSE_SHUTDOWN_GRACE_S)),
    )
    BourseHttpProtocol.request_timeout = settings.BOURSE_HTTP_REQUEST_TIMEOUT_S
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # its start and stop lines: ours say it
    log.info("serving HTTP", extra={"pid": os.getpid(), "address": ":".join(str(part) for part in sock.getsockname()[:2])})
    BourseServer(config).run(sockets=[sock])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m exchange.webserver", description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True, help="a listening TCP socket inherited from serve_http")
    serve(parser.parse_args(argv).fd)


if __name__ == "__main__":
    main()
