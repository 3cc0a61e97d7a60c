"""The ``/ws/v1`` consumer: the protocol of docs/websocket.md over Channels.

Thin like every transport: it parses frames, authenticates with the one verifier
(``apikeys.verifier.verify_request``, method ``GET``, path ``/ws/v1``), reads snapshots and
replays through ``trading.ws.selectors``, and leaves fan-out to the process's
``trading.ws.relay.Relay``. Every refusal is an ``error`` frame with a stable code from
``exchange.errors``; the connection survives bad input, except past the inbound message
rate (closed with 1008) and past the connection limits (refused with 1008).

An authenticated connection follows its key (``apikeys.live``): when the key is revoked,
expires, loses the ``read`` scope, no longer allows the connection's address, or its owner
is deactivated, the connection stops delivering and accepting at once, sends an ``error``
frame with the refusal's code and is closed with ``4000 + the code's HTTP status`` (4401 or
4403) and the code as the close reason.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from apikeys.live import LiveSessions
from apikeys.verifier import audit_refusal, require_scope, verify_request
from exchange import clientip, errors, metrics
from exchange.syntax import json_loads, nul_path
from trading.outbox import selectors as outbox

from . import selectors
from .order_entry import ORDER_OPS, OrderEntryMixin
from .relay import PRIVATE_TYPES, Relay, Subscription, dumps, render_sequenced

if TYPE_CHECKING:
    from trading.models import Market

log = logging.getLogger("bourse.ws")

WS_PATH = "/ws/v1"
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()
# Policy closes use application close codes (4000-4999, docs/websocket.md): the WebSocket
# library under daphne refuses to send 1008 from a server, which used to crash the consumer
# and leak the connection's slot.
CLOSE_TOO_MANY_CONNECTIONS = 4001
CLOSE_PAYLOAD_TOO_LARGE = 4009  # sent by exchange.serverlimits for frames over daphne's maximum
CLOSE_RATE_LIMITED = 4029
SLOW_CLIENT_BYTES = 8 * 1024 * 1024  # frames queued for one client beyond this: it is dropped
MARKET_CHANNELS = ("book", "trades", "ticker")

# Open connections per source address and per API key, in this process (the limits are
# per WebSocket process; docs/websocket.md says so).
_per_ip: Counter = Counter()
_per_key: Counter = Counter()

# The fan-out's fast path relies on private attributes of daphne, autobahn and Twisted (pinned
# in requirements.lock). Each process says once whether it is in use, so an upgrade that
# breaks it shows in the log (and fails tests/ws/test_fast_path.py) instead of silently
# costing the fan-out its speed.
_fast_path_said: set[str] = set()


def _say_fast_path(part: str, active: bool, detail: str) -> None:
    if part in _fast_path_said:
        return
    _fast_path_said.add(part)
    if active:
        log.info("websocket fast path active: %s", part, extra={"detail": detail})
    else:
        log.warning("websocket fast path UNAVAILABLE: %s (%s); frames go the slow way", part, detail)


_live: dict[int, LiveSessions] = {}  # per event loop (one in a daphne process)


def live_sessions() -> LiveSessions:
    """This process's registry of authenticated connections, on the running loop."""
    import asyncio

    loop = asyncio.get_running_loop()
    registry = _live.get(id(loop))
    if registry is None or registry.loop is not loop:
        registry = _live[id(loop)] = LiveSessions(loop, _run_sync)
    return registry


async def _run_sync(fn, *args):
    return await database_sync_to_async(fn)(*args)


def key_close_code(error: errors.BourseError) -> int:
    """The close code of a connection ended by its key: 4000 + the refusal's HTTP status."""
    return 4000 + error.status


def _under_daphne(send) -> bool:
    func = getattr(send, "func", None)
    return getattr(func, "__module__", "").startswith("daphne.")


def _error_frame(error: errors.BourseError, message_id=None) -> str:
    frame = {"type": "error", "code": error.code, "message": error.detail, "id": message_id}
    if error.errors:
        frame["errors"] = error.errors
    frame.update(error.extra)
    return dumps(frame)


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class MarketDataConsumer(OrderEntryMixin, AsyncWebsocketConsumer):
    """One client connection: its authentication, subscriptions and inbound budget."""

    # No channel-layer inbox per connection: fan-out goes through the process's relay, and an
    # idle connection then costs no Redis read (channels_redis would keep one pending each).
    channel_layer_alias = "bourse-ws-no-layer"

    async def connect(self):
        peer = (self.scope.get("client") or ("", 0))[0]
        self.ip = clientip.resolve(peer, _header(self.scope, b"x-forwarded-for"))
        self.key = None
        self.account_id = None
        # For apikeys.live: the key this connection authenticated, and what it needs.
        self.key_id: str | None = None
        self.source_ip = self.ip
        self.required_scope = "read"
        self.ended = False  # ended by its key: nothing more in or out
        self.subscriptions: dict[str, Subscription] = {}
        self.open = False
        self._raw: Any = False  # not looked up yet (see _raw_protocol); then daphne's protocol or None
        self._direct: bool | None = None  # whether write_raw may send on the socket itself
        self._window_start = time.monotonic()
        self._window_count = 0
        self._work_start = self._window_start
        self._work = 0
        if _per_ip[self.ip] >= settings.BOURSE_WS_MAX_CONNECTIONS_PER_IP:
            await self.accept()
            await self.send(text_data=_error_frame(errors.TooManyConnections(
                f"This address already holds {settings.BOURSE_WS_MAX_CONNECTIONS_PER_IP} connections.",
                limit=settings.BOURSE_WS_MAX_CONNECTIONS_PER_IP)))
            await self.close(code=CLOSE_TOO_MANY_CONNECTIONS)
            return
        _per_ip[self.ip] += 1
        self.open = True
        metrics.WS_CONNECTIONS.inc()
        await self.accept()

    async def disconnect(self, code):
        self._release()
        await self.order_entry_close()

    def _release(self) -> None:
        """Give back this connection's per-IP and per-key slots and its subscriptions; done
        once, whichever of a policy close or the disconnect comes first."""
        if not self.open:
            return
        self.open = False
        metrics.WS_CONNECTIONS.dec()
        _per_ip[self.ip] -= 1
        if _per_ip[self.ip] <= 0:
            del _per_ip[self.ip]
        if self.key is not None:
            live_sessions().discard(self)
            _per_key[self.key] -= 1
            if _per_key[self.key] <= 0:
                del _per_key[self.key]
        for subscription in self.subscriptions.values():
            Relay.get().remove(subscription)
        self.subscriptions.clear()

    # -- relay callbacks ---------------------------------------------------------------------
    async def send_text(self, text: str) -> None:
        if self.open and not self.ended:
            await self.send(text_data=text)

    async def end_for_key(self, error: errors.BourseError) -> None:
        """The key may no longer be used (``apikeys.live``): deliver and accept nothing more,
        say why, close with ``key_close_code`` and the code as the reason."""
        if self.ended or not self.open:
            return
        self.ended = True
        for subscription in self.subscriptions.values():
            Relay.get().remove(subscription)
        self.subscriptions.clear()
        await self.send(text_data=_error_frame(error))
        code = key_close_code(error)
        send = self.base_send
        protocol = send.args[0] if isinstance(send, functools.partial) and send.args else None
        if protocol is not None and hasattr(protocol, "sendClose") and _under_daphne(send):
            # daphne drops the ASGI close reason; autobahn's sendClose carries it.
            protocol.sendClose(code=code, reason=error.code)
        else:
            await self.close(code=code, reason=error.code)

    def _raw_protocol(self):
        """The daphne (autobahn) protocol under this connection when frames may be written to
        its transport directly: daphne's ASGI ``send`` is ``partial(server.handle_reply,
        protocol)``; without per-message compression a text frame is the same bytes for every
        client. None under any other server (or the test communicator): frames then go
        through ``send``."""
        if self._raw is False:
            send = self.base_send
            protocol = send.args[0] if isinstance(send, functools.partial) and send.args else None
            usable = (
                protocol is not None
                and hasattr(protocol, "transport") and hasattr(protocol, "STATE_OPEN")
                and getattr(protocol, "_perMessageCompress", True) is None
            )
            self._raw = protocol if usable else None
            if _under_daphne(send):  # elsewhere (the test communicator) there is no fast path to have
                _say_fast_path("pre-rendered frames", usable, type(protocol).__name__)
        return self._raw

    def can_write_raw(self) -> bool:
        protocol = self._raw_protocol() if self.open and not self.ended else None
        return protocol is not None and protocol.state == protocol.STATE_OPEN

    def write_raw(self, wire: bytes) -> None:
        """Write a pre-built frame. On a plain TCP transport with nothing queued, one
        non-blocking ``send`` (Twisted's ``write`` would register the socket for writability
        and send on the next turn: two epoll changes per subscriber and event); whatever the
        kernel does not take is queued behind it through ``transport.write``."""
        transport = self._raw.transport
        if self._direct is None:
            self._direct = (
                type(transport).__module__ == "twisted.internet.tcp" and type(transport).__name__ == "Server"
                and hasattr(transport, "socket") and hasattr(transport, "dataBuffer")
                and hasattr(transport, "_tempDataBuffer")
            )
            _say_fast_path("direct socket writes", self._direct, f"{type(transport).__module__}.{type(transport).__name__}")
        if self._direct and not transport.dataBuffer and not transport._tempDataBuffer:
            try:
                sent = transport.socket.send(wire)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0  # a broken socket: Twisted's write finds out and closes it
            if sent == len(wire):
                return
            wire = wire[sent:]
        transport.write(wire)
        if self._direct:
            queued = len(transport.dataBuffer) - transport.offset + getattr(transport, "_tempDataLen", 0)
            if queued > SLOW_CLIENT_BYTES:
                # A client that does not read would make the server queue without bound.
                log.warning("dropping a websocket client that does not read", extra={"queued": queued, "ip": self.ip})
                metrics.WS_SLOW_DROPPED.inc()
                transport.abortConnection()

    async def stream_broken(self, subscription: Subscription) -> None:
        """The relay could not fill a gap (events pruned): drop the channel, tell the client."""
        if self.subscriptions.get(subscription.name) is subscription:
            del self.subscriptions[subscription.name]
            Relay.get().remove(subscription)
        await self.send_text(_error_frame(errors.ResyncRequired(
            f"Events of {subscription.name} were lost; subscribe again (private channels: resync over REST).",
            channel=subscription.name)))

    # -- inbound -----------------------------------------------------------------------------
    async def receive(self, text_data=None, bytes_data=None):
        if not self.open or self.ended:
            return
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        if self._window_count > settings.BOURSE_WS_MAX_MESSAGES_PER_S:
            await self._policy_close(errors.RateLimited(
                f"More than {settings.BOURSE_WS_MAX_MESSAGES_PER_S} messages in one second; closing.",
                retry_after=1, policy="ws_messages"), CLOSE_RATE_LIMITED)
            return
        raw = text_data if text_data is not None else bytes_data
        if len(raw.encode() if isinstance(raw, str) else raw) > settings.BOURSE_WS_MAX_FRAME_BYTES:
            await self.send_text(_error_frame(errors.PayloadTooLarge(
                f"Frames are limited to {settings.BOURSE_WS_MAX_FRAME_BYTES} bytes.",
                limit=settings.BOURSE_WS_MAX_FRAME_BYTES)))
            return
        if text_data is None:
            await self.send_text(_error_frame(errors.InvalidMessage("Send text frames holding JSON objects.")))
            return
        try:
            message = json_loads(text_data)
        except ValueError as exc:
            await self.send_text(_error_frame(errors.InvalidMessage(f"Malformed JSON: {exc}.")))
            return
        if not isinstance(message, dict):
            await self.send_text(_error_frame(errors.InvalidMessage("A message is a JSON object with an op.")))
            return
        where = nul_path(message)
        if where is not None:
            await self.send_text(_error_frame(errors.InvalidMessage(f"{where[:64]} holds a NUL character."),
                                              message.get("id") if isinstance(message.get("id"), (str, int)) else None))
            return
        message_id = message.get("id")
        op = message.get("op")
        handler = self.OPS.get(op) if isinstance(op, str) else None
        # The work budget: each operation costs 1 plus 1 per channel it names, so the server
        # work one connection can ask for per second is bounded whatever the message rate.
        channels = message.get("channels")
        cost = 1 + (len(channels) if isinstance(channels, list) else 0)
        if now - self._work_start >= 1.0:
            self._work_start, self._work = now, 0
        self._work += cost
        if self._work > settings.BOURSE_WS_MAX_WORK_PER_S:
            await self._policy_close(errors.RateLimited(
                f"More than {settings.BOURSE_WS_MAX_WORK_PER_S} units of work in one second (an operation costs 1 "
                "plus 1 per channel it names); closing.", retry_after=1, policy="ws_work"), CLOSE_RATE_LIMITED,
                message_id)
            return
        try:
            if handler is None:
                raise errors.UnknownOp(
                    f"Unknown op {message.get('op')!r}; use one of: {', '.join(self.OPS)}.")
            await handler(self, message, message_id)
        except Exception as exc:  # noqa: BLE001 - every failure is answered (op_error)
            await self.op_error(exc, message_id, message.get("op"))

    async def op_error(self, exc: Exception, message_id=None, op=None) -> None:
        """Answer a failed op with its error frame (a policy close for too many connections)."""
        if isinstance(exc, errors.TooManyConnections):
            await self._policy_close(exc, CLOSE_TOO_MANY_CONNECTIONS, message_id)
        elif isinstance(exc, errors.BourseError):
            await self.send_text(_error_frame(exc, message_id))
        else:
            unavailable = errors.dependency_failure(exc)
            if unavailable is not None:  # a dependency is down: retry, as REST's 503
                log.warning("websocket op failed: dependency unavailable", extra={"op": op})
                await self.send_text(_error_frame(unavailable, message_id))
                return
            log.exception("websocket op failed", extra={"op": op}, exc_info=exc)
            await self.send_text(_error_frame(errors.ServerError("Internal error."), message_id))

    async def _policy_close(self, error: errors.BourseError, code: int, message_id=None) -> None:
        """Send the error frame, release the connection's slots at once (even if the close
        below fails, nothing leaks), then close with an application close code."""
        if isinstance(error, errors.RateLimited):
            metrics.RATE_LIMIT_REFUSALS.labels(error.extra.get("policy", "ws")).inc()
        await self.send_text(_error_frame(error, message_id))
        self._release()
        try:
            await self.close(code=code)
        except Exception:  # noqa: BLE001 - the slots are already free; the socket is the server's
            log.exception("websocket close failed", extra={"code": code})

    # -- ops ---------------------------------------------------------------------------------
    async def op_ping(self, message, message_id):
        await self.send_text(dumps({"type": "pong", "id": message_id}))

    async def op_auth(self, message, message_id):
        if self.key is not None:
            raise errors.AlreadyAuthenticated(f"Already authenticated as {self.key}.")
        fields = {}
        for name in ("key", "timestamp", "nonce", "signature", "window"):
            value = message.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and name in ("timestamp", "window"):
                value = str(value)
            if value is not None and not isinstance(value, str):
                raise errors.InvalidCredentials(f"{name} must be a string.", errors=[
                    {"field": name, "code": "invalid", "message": f"{name} must be a string."}])
            fields[name] = value
        cancel_on_disconnect = await self.order_entry_auth(message)
        key = await database_sync_to_async(self._verify)(fields)
        await self.order_entry_authenticated(key, cancel_on_disconnect)
        if _per_key[key.key_id] >= settings.BOURSE_WS_MAX_CONNECTIONS_PER_KEY:
            raise errors.TooManyConnections(
                f"Key {key.key_id} already holds {settings.BOURSE_WS_MAX_CONNECTIONS_PER_KEY} connections.",
                limit=settings.BOURSE_WS_MAX_CONNECTIONS_PER_KEY)
        _per_key[key.key_id] += 1
        self.key, self.account_id = key.key_id, key.account_id
        self.key_id = key.key_id
        live_sessions().add(self, key)
        await self.send_text(dumps({"type": "auth", "id": message_id, "key": key.key_id,
                                    "account_id": str(key.account_id)}))

    def _verify(self, fields):
        """The verifier's decision, audited like REST's (``auth.failed``, channel ``ws``)."""
        try:
            key = verify_request(
                key_id=fields["key"], timestamp=fields["timestamp"], nonce=fields["nonce"],
                signature=fields["signature"], window=fields["window"], method="GET", path=WS_PATH, query="",
                body_sha256=EMPTY_BODY_SHA256, source_ip=self.ip,
            )
            require_scope(key, "read")
        except errors.BourseError as error:
            audit_refusal(error, channel="ws", source_ip=self.ip, key_id=fields["key"])
            raise
        return key

    async def op_subscribe(self, message, message_id):
        names = self._channel_names(message)
        since = self._since(message, names)
        wanted = [name for name in dict.fromkeys(names) if name not in self.subscriptions]
        # Refused before any look-up: the limit bounds the work as well as the state.
        total = len(self.subscriptions) + len(wanted)
        if total > settings.BOURSE_WS_MAX_SUBSCRIPTIONS:
            raise errors.TooManySubscriptions(
                f"At most {settings.BOURSE_WS_MAX_SUBSCRIPTIONS} subscriptions per connection "
                f"({len(self.subscriptions)} held, {len(wanted)} asked).",
                limit=settings.BOURSE_WS_MAX_SUBSCRIPTIONS)
        streams = await database_sync_to_async(self._resolve)(wanted)
        relay = Relay.get()
        added = []
        # Register first (live events buffer), then read the snapshots: nothing falls between.
        for name in wanted:
            kind, ident, market = streams[name]
            subscription = Subscription(self, (kind, ident), name, sequenced=kind in ("book", *PRIVATE_TYPES))
            await relay.add(subscription)
            added.append((name, subscription, market))
        try:
            starts = await database_sync_to_async(self._starts)(added, since)
        except BaseException:
            for _, subscription, _ in added:
                relay.remove(subscription)
            raise
        for name, subscription, _ in added:
            self.subscriptions[name] = subscription
        await self.send_text(dumps({
            "type": "subscribed", "id": message_id,
            "channels": [{"channel": name, "sequence": starts[name][0]} for name, _, _ in added],
        }))
        for name, subscription, _ in added:
            last, frames = starts[name]
            await subscription.start(last, frames)

    async def op_unsubscribe(self, message, message_id):
        names = self._channel_names(message)
        await database_sync_to_async(self._resolve)([n for n in names if n not in self.subscriptions])
        removed = []
        for name in dict.fromkeys(names):
            subscription = self.subscriptions.pop(name, None)
            if subscription is not None:
                Relay.get().remove(subscription)
                removed.append(name)
        await self.send_text(dumps({"type": "unsubscribed", "id": message_id, "channels": removed}))

    async def op_order_entry(self, message, message_id):
        await self.order_op(message, message_id)  # trading/ws/order_entry.py

    OPS = {"auth": op_auth, "subscribe": op_subscribe, "unsubscribe": op_unsubscribe, "ping": op_ping,
           **dict.fromkeys(ORDER_OPS, op_order_entry)}

    # -- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _channel_names(message) -> list[str]:
        names = message.get("channels")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise errors.ValidationError.field(
                "channels", "invalid", "channels must be a non-empty list of channel names.")
        if len(names) > settings.BOURSE_WS_MAX_SUBSCRIPTIONS:  # before any look-up or copy
            raise errors.TooManySubscriptions(
                f"At most {settings.BOURSE_WS_MAX_SUBSCRIPTIONS} channels per operation ({len(names)} named).",
                limit=settings.BOURSE_WS_MAX_SUBSCRIPTIONS)
        return names

    def _since(self, message, names) -> dict[str, int]:
        """``since`` as ``{private channel: N}``: one integer for every private channel listed,
        or an object naming them."""
        if "since" not in message or message["since"] is None:
            return {}
        value = message["since"]
        private = [n for n in names if n in PRIVATE_TYPES]
        if isinstance(value, int) and not isinstance(value, bool):
            value = {name: value for name in private}
        if not isinstance(value, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value.values()
        ):
            raise errors.ValidationError.field(
                "since", "invalid", "since is a sequence number (>= 0), or an object of them per private channel.")
        if not private or set(value) - set(private):
            raise errors.ValidationError.field(
                "since", "invalid", "since applies to the private channels (orders, fills, balances) being subscribed.")
        return value

    def _resolve(self, names) -> dict[str, tuple[str, int, object]]:
        """Channel name -> ``(kind, stream id, market)``; all or nothing."""
        resolved: dict[str, tuple[str, int, object]] = {}
        unknown: list[str] = []
        private: list[str] = []
        markets: dict[str, Market] = {}
        for name in names:
            kind, _, symbol = name.partition(":")
            if kind in MARKET_CHANNELS and symbol:
                market = markets.get(symbol) or selectors.market_by_symbol(symbol)
                if market is not None:
                    markets[symbol] = market
                    resolved[name] = (kind, market.pk, market)
                    continue
            elif name in PRIVATE_TYPES:
                if self.account_id is None:
                    private.append(name)
                else:
                    resolved[name] = (name, self.account_id, None)
                continue
            unknown.append(name)
        if unknown:
            raise errors.UnknownChannel(
                f"Unknown channel{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}.",
                errors=[{"field": "channels", "code": "unknown_channel", "message": f"{n} does not exist.",
                         "channel": n} for n in unknown])
        if private:
            raise errors.NotAuthenticated(f"Authenticate (op auth) before subscribing to {', '.join(private)}.")
        return resolved

    def _starts(self, added, since) -> dict[str, tuple[int | None, list[str]]]:
        """Per new subscription: the sequence it starts after and the frames that come first."""
        starts = {}
        for name, subscription, market in added:
            kind, ident = subscription.stream
            if kind == "book":
                snapshot = selectors.book_snapshot(market)
                starts[name] = (snapshot["sequence"], [dumps({"channel": name, "type": "snapshot", **snapshot})])
            elif kind == "ticker":
                starts[name] = (None, [dumps({"channel": name, "type": "ticker", "data": selectors.ticker(market)})])
            elif kind == "trades":
                starts[name] = (None, [])
            elif name in since:
                last, rows = outbox.private_replay(ident, kind, since[name])
                frames = render_sequenced(rows)
                starts[name] = (max([last, *(seq for seq, _ in frames)]), [text for _, text in frames])
            else:
                starts[name] = (outbox.private_last(ident, kind), [])
        return starts
