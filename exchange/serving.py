"""daphne serving Bourse: start-up checks, a port in use, and a graceful stop on SIGTERM.

Installed into daphne's ``Server`` by ``exchange.asgi`` (so only where daphne serves Bourse):

- **Before it listens** daphne runs the start-up checks (exchange/preflight.py): a database
  or Redis it cannot reach stops it with one line and exit 69 instead of serving 500s.
- **A port in use** stops it with one line and exit 69 (daphne alone logs the failure and
  exits 0, which a supervisor reads as a clean stop).
- **SIGTERM/SIGINT drain** before the stop: daphne stops accepting connections, closes every
  WebSocket with 1001 (going away: clients reconnect to another server), lets every HTTP
  request in flight finish (an order waiting for the engine's verdict gets its answer), and
  only then cancels what is left — within ``BOURSE_SHUTDOWN_GRACE_S`` (10 s) — and exits 0.
"""
from __future__ import annotations

import logging
import time

from django.conf import settings

from . import preflight

log = logging.getLogger("bourse.server")

CLOSE_GOING_AWAY = 1001
PORT_SETTING = "the daphne port (-p)"
PORT_FIX = "`make run`: PORT; Procfile: BOURSE_WEB_PORT, BOURSE_WS_PORT"


def install() -> bool:
    try:
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
        from twisted.internet import defer, reactor
    except ImportError:  # pragma: no cover - another server: its own behaviour applies
        return False
    if getattr(Server, "_bourse_serving", False):
        return True
    Server._bourse_serving = True
    run, listen_success, kill_all = Server.run, Server.listen_success, Server.kill_all_applications

    def run_checked(self):
        preflight.check_or_exit("web", hard=True)
        # No header naming the server software, in HTTP responses or the WebSocket handshake
        # (daphne's ``--no-server-name``, whatever the command line says), as on the web role.
        self.server_name = ""
        self._bourse_ports = []
        return run(self)

    def listen_succeeded(self, port):
        self._bourse_ports.append(port)
        return listen_success(self, port)

    def listen_failed(self, failure):
        exc = failure.value
        host, port = getattr(exc, "interface", "") or "0.0.0.0", getattr(exc, "port", "?")  # noqa: S104 - a message
        reason = getattr(getattr(exc, "socketError", None), "strerror", None) or failure.getErrorMessage()
        error = preflight.port_in_use(PORT_SETTING, host, port, reason)
        error.fix = f"stop the process holding port {port} (`ss -ltnp 'sport = :{port}'`) or choose another ({PORT_FIX})"
        preflight.hard_fail("web", error)

    def drain_then_kill(self):
        """Stop accepting, close WebSockets with 1001, let HTTP requests in flight finish,
        then daphne's own cancel of whatever remains; Twisted waits for the returned Deferred."""
        grace = settings.BOURSE_SHUTDOWN_GRACE_S
        deadline = time.monotonic() + grace
        for port in getattr(self, "_bourse_ports", []):
            port.stopListening()
        sockets = 0
        for protocol in list(self.connections):
            if isinstance(protocol, WebSocketProtocol) and protocol.state == protocol.STATE_OPEN:
                try:
                    # autobahn's sendClose() allows only 1000 and 3000-4999; 1001 is the protocol's
                    # own "going away" (RFC 6455 7.4.1), sent as the frame itself.
                    protocol.sendCloseFrame(code=CLOSE_GOING_AWAY, reasonUtf8=b"server shutting down", isReply=False)
                    sockets += 1
                except Exception:  # noqa: BLE001 - one broken connection must not stop the drain
                    log.exception("could not close a websocket cleanly")

        def busy() -> int:
            return in_flight(self.connections, WebSocketProtocol)

        log.info("shutting down: draining", extra={"websockets_closed": sockets, "in_flight": busy(),
                                                   "grace_s": grace})
        done = defer.Deferred()

        def poll():
            left = busy()
            if left and time.monotonic() < deadline:
                reactor.callLater(0.05, poll)
                return
            if left:
                log.warning("shutdown grace over; cancelling what is left", extra={"left": left})
            kill_all(self).chainDeferred(done)

        poll()
        return done

    Server.run = run_checked
    Server.listen_success = listen_succeeded
    Server.listen_error = listen_failed
    Server.kill_all_applications = drain_then_kill
    return True


def in_flight(connections: dict, websocket_protocol: type) -> int:
    """What the drain waits for: each WebSocket not yet closed by its client, and each
    application instance not yet returned. An HTTP connection counts until its application
    returns, not until its response is sent: daphne marks the connection ended with the
    response's last byte, while the application is still finishing (the request's end, its
    disconnect watch); cancelled there, it left a task behind that asyncio logged as a
    traceback."""
    count = 0
    for protocol, details in list(connections.items()):
        instance = details.get("application_instance")
        if instance is not None and not instance.done():
            count += 1
        elif isinstance(protocol, websocket_protocol) and not details.get("disconnected"):
            count += 1  # waits for the client's close (or the grace)
    return count
