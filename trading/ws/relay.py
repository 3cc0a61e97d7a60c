"""Fan-out: one relay per WebSocket process pushes committed outbox events to local sockets.

Why not a Channels group per channel: ``channels_redis`` ``group_send`` costs one Redis
round trip per member channel and drops messages past a group's capacity
(ARCHITECTURE.md "Known traps"; ``bench/ws_fanout.py`` measures it). Here a writer
announces each committed transaction once (``trading.outbox.signal``); every WebSocket
process's relay reads those rows back with ONE query, renders each event's frame ONCE, and
writes that text to each local subscriber. Redis (or a unix datagram in the embedded mode)
carries one small message per transaction whatever the number of subscribers.

Ordering and loss. Book and private streams are sequenced (the market's book sequence; the
account's per-channel sequence), and their writers commit sequence N+1 only after N. The
relay keeps the last sequence it delivered per stream: a duplicate is dropped, a gap is
filled from the outbox before anything later goes out. Every ``BOURSE_WS_POLL_S`` it also
re-reads recent events of the streams it serves, so a lost announcement delays an event by
at most that long. A subscriber joining mid-stream buffers live events while its snapshot
(or replay) is read, then sends only what follows it.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from exchange import metrics
from trading.outbox import selectors as outbox
from trading.outbox import signal

from . import selectors

log = logging.getLogger("bourse.ws")

PRIVATE_TYPES = {"orders": "order", "fills": "fill", "balances": "balance"}

# The relay's reads run on one thread of their own that keeps its database connection:
# channels' database_sync_to_async closes a connection older than CONN_MAX_AGE (0 here) on
# every call, and reconnecting cost more than the whole fan-out (measured: bench/ws_fanout.py).
_db_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bourse-ws-relay-db")


def _db_call(fn, *args):
    try:
        return fn(*args)
    except (InterfaceError, OperationalError):
        connection.close()  # a dropped connection: reconnect once
        return fn(*args)


def _close_connection():
    connection.close()  # resolved on the calling thread: the executor's own connection


async def relay_db(fn, *args):
    """Run a read of the relay on its own thread and persistent connection."""
    return await asyncio.get_running_loop().run_in_executor(_db_executor, _db_call, fn, *args)


def dumps(frame: dict) -> str:
    return json.dumps(frame, separators=(",", ":"))


def ws_text_frame(data: bytes) -> bytes:
    """One unfragmented, unmasked WebSocket text frame (RFC 6455 5.2). A server's frames are
    never masked, so the same bytes serve every subscriber of an event."""
    size = len(data)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 65536:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + data


def stream_of(row: dict) -> tuple[str, int]:
    """``(kind, id)``: ``("book", market)``, ``("trades", market)``, ``("orders", account)``…"""
    if row["account_id"] is not None:
        return row["channel"], row["account_id"]
    return row["channel"], row["market_id"]


def trade_position(event: dict) -> int:
    """Where an unsequenced (trade, candle) event stands: its row's id, then its place in a
    batched row (``trading.outbox.selectors.expand`` numbers them ``part``)."""
    return event["id"] * 2**32 + event.get("part", 0)


def candle_frame(symbol: str, interval: str, bar: dict) -> str:
    return dumps({"channel": f"candles:{symbol}:{interval}", "type": "candle", "data": bar})


def render(row: dict, stream: tuple[str, int] | None = None) -> tuple[int | None, str]:
    """An outbox row as ``(sequence, frame text)``; trades and candles are unsequenced (None).
    A ``candles`` row holds one bar per interval: ``stream`` says which one."""
    channel, payload = row["channel"], row["payload"]
    if channel == "candles":
        assert stream is not None  # a candles row is rendered per interval stream
        interval = stream[0].partition(":")[2]
        return None, candle_frame(payload["market"], interval, payload["candles"][interval])
    if channel == "book":
        return row["sequence"], dumps({"channel": f"book:{payload['market']}", "type": "update", **payload})
    if channel == "trades":
        return None, dumps({"channel": f"trades:{payload['market']}", "type": "trade", "data": payload})
    return row["sequence"], dumps(
        {"channel": channel, "type": PRIVATE_TYPES[channel], "sequence": row["sequence"], "data": payload}
    )


def render_sequenced(rows: Iterable[dict]) -> list[tuple[int, str]]:
    """``render`` for the rows of a sequenced stream (book, private), which all carry a sequence."""
    return [(sequence, text) for sequence, text in map(render, rows) if sequence is not None]


async def fetch_gap(stream: tuple[str, int], after: int, before: int | None) -> list[tuple[int, str]]:
    kind, ident = stream
    if kind == "book":
        rows = await relay_db(outbox.book_events, ident, after, before)
    else:
        rows = await relay_db(outbox.private_events, ident, kind, after, before)
    return render_sequenced(rows)


class Subscription:
    """One connection's interest in one stream. While ``joining`` it buffers live events;
    ``start(last, frames)`` sends the snapshot/replay frames, then what followed ``last``."""

    def __init__(self, connection, stream: tuple[str, int], name: str, sequenced: bool = True):
        self.connection = connection
        self.stream = stream
        self.name = name  # the channel name the client used, e.g. "book:BTC-USD"
        self.sequenced = sequenced
        self.last: int | None = None
        self.joining = True
        self.closed = False
        self._buffer: list[tuple[int | None, str]] = []
        self._lock = asyncio.Lock()

    async def start(self, last: int | None, frames: list[str]) -> None:
        async with self._lock:
            for text in frames:
                await self.connection.send_text(text)
            self.last = last
            buffered, self._buffer = sorted(self._buffer, key=lambda item: item[0] or 0), []
            self.joining = False
            for sequence, text in buffered:
                await self._deliver(sequence, text)

    def try_write(self, sequence: int | None, wire: bytes) -> bool:
        """The fan-out's fast path: write the pre-built frame straight to the socket when this
        event is simply the next one. False: take ``offer`` (joining, a gap, no raw socket)."""
        if self.joining or self.closed or self._lock.locked() or not self.connection.can_write_raw():
            return False
        if self.sequenced and sequence is not None:
            assert self.last is not None  # a started sequenced stream knows its last sequence
            if sequence <= self.last:
                return True  # already sent
            if sequence != self.last + 1:
                return False
            self.last = sequence
        self.connection.write_raw(wire)
        return True

    async def offer(self, sequence: int | None, text: str) -> None:
        if self.joining:
            self._buffer.append((sequence, text))
            return
        async with self._lock:
            await self._deliver(sequence, text)

    async def _deliver(self, sequence: int | None, text: str) -> None:
        if self.closed:
            return
        if not self.sequenced or sequence is None:
            await self.connection.send_text(text)
            return
        assert self.last is not None  # a started sequenced stream knows its last sequence
        if sequence <= self.last:
            return  # already sent (snapshot, replay, or a repeated announcement)
        if sequence != self.last + 1:  # missed while joining: read them back first
            for missed, missed_text in await fetch_gap(self.stream, self.last, sequence):
                if missed == self.last + 1:
                    await self.connection.send_text(missed_text)
                    self.last = missed
        if sequence != self.last + 1:
            log.error("stream gap not fillable", extra={"stream": self.stream, "last": self.last, "got": sequence})
            self.closed = True
            await self.connection.stream_broken(self)
            return
        await self.connection.send_text(text)
        self.last = sequence


class Relay:
    """The per-process (per event loop) fan-out. ``Relay.get()`` starts it with the first
    subscription; it stops when the last one leaves."""

    _instances: dict[int, Relay] = {}

    @classmethod
    def get(cls) -> Relay:
        loop = asyncio.get_running_loop()
        relay = cls._instances.get(id(loop))
        if relay is None or relay.stopped:
            relay = cls._instances[id(loop)] = cls(loop)
        return relay

    def __init__(self, loop):
        self.loop = loop
        self.subscribers: dict[tuple[str, int], set[Subscription]] = defaultdict(set)
        # last sequence (book/private) or position (trades: ``trade_position``) sent
        self.cursor: dict[tuple[str, int], int] = {}
        self.pending: set[int] = set()
        self.wake = asyncio.Event()
        self.stopped = False
        self._tasks: list[asyncio.Task] = []
        self._sock: socket.socket | None = None
        self._sock_path: Path | None = None
        self._started = False
        self._poll_from = None  # re-read ids above this on the next poll (one period behind)
        self._max_seen = 0
        self._ticker_due: dict[int, float] = {}
        self._ticker_tasks: dict[int, asyncio.Task] = {}

    # -- membership --------------------------------------------------------------------------
    async def add(self, subscription: Subscription) -> None:
        if not self._started:
            await self._start()
        members = self.subscribers[subscription.stream]
        if subscription not in members:
            members.add(subscription)
            metrics.WS_SUBSCRIPTIONS.inc()

    def remove(self, subscription: Subscription) -> None:
        subscription.closed = True
        members = self.subscribers.get(subscription.stream)
        if members is not None:
            if subscription in members:
                members.discard(subscription)
                metrics.WS_SUBSCRIPTIONS.dec()
            if not members:
                del self.subscribers[subscription.stream]
                self.cursor.pop(subscription.stream, None)
        if not self.subscribers:
            self.stop()

    # -- lifecycle ---------------------------------------------------------------------------
    async def _start(self) -> None:
        self._started = True
        self._max_seen = self._poll_from = await relay_db(outbox.latest_event_id)
        if signal.uses_redis():
            threading.Thread(target=self._listen_redis, name="bourse-ws-outbox", daemon=True).start()
        else:
            path = signal.socket_dir() / f"ws-{os.getpid()}-{uuid.uuid4().hex[:8]}.sock"
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(str(path))
            sock.setblocking(False)
            self._sock, self._sock_path = sock, path
            self.loop.add_reader(sock.fileno(), self._on_datagram)
        self._tasks.append(asyncio.ensure_future(self._run()))

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        for task in [*self._tasks, *self._ticker_tasks.values()]:
            task.cancel()
        if self._sock is not None:
            self.loop.remove_reader(self._sock.fileno())
            self._sock.close()
            if self._sock_path is not None:
                self._sock_path.unlink(missing_ok=True)
        Relay._instances.pop(id(self.loop), None)
        if not Relay._instances:
            _db_executor.submit(_close_connection)  # an idle process holds no database connection

    def _on_datagram(self) -> None:
        sock = self._sock
        if sock is None:  # stopped: the reader is removed with the socket
            return
        try:
            while True:
                self.pending.update(signal.decode(sock.recv(signal.MAX_MESSAGE + 64).decode()))
        except BlockingIOError:
            pass
        except Exception:
            log.exception("bad outbox announcement")
        self.wake.set()

    def _listen_redis(self) -> None:
        """A daemon thread (redis-py's blocking pub/sub): cancelling an asyncio subscription
        would need awaits while the loop shuts down. Ids are handed to the loop."""
        import redis

        while not self.stopped:
            try:
                client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(signal.redis_channel())
                try:
                    while not self.stopped:
                        message = pubsub.get_message(timeout=0.5)
                        if message and message.get("type") == "message":
                            self.loop.call_soon_threadsafe(self._on_ids, signal.decode(message["data"].decode()))
                finally:
                    pubsub.close()
                    client.close()
            except RuntimeError:
                return  # the event loop is closed: this relay is gone
            except Exception:
                if self.stopped:
                    return
                log.exception("outbox subscription to Redis failed; retrying (the poll covers the gap)")
                time.sleep(1.0)

    def _on_ids(self, ids) -> None:
        self.pending.update(ids)
        self.wake.set()

    async def _run(self) -> None:
        while not self.stopped:
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=settings.BOURSE_WS_POLL_S)
                polled = False
            except TimeoutError:
                polled = True
            self.wake.clear()
            try:
                if polled:
                    rows = await self._poll()
                else:
                    ids, self.pending = self.pending, set()
                    rows = await relay_db(outbox.events_by_id, ids)
                await self.dispatch(rows)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay dispatch failed; the next poll retries")

    async def _poll(self) -> list[dict]:
        markets = {ident for (kind, ident) in self.subscribers if kind in ("book", "trades", "ticker")
                   or kind.startswith("candles:")}
        accounts = {ident for (kind, ident) in self.subscribers if kind in PRIVATE_TYPES}
        start, top = self._poll_from, self._max_seen
        if not markets and not accounts:
            self._poll_from = top
            return []
        rows = await relay_db(outbox.events_after_id, start, markets, accounts)
        self._poll_from = top  # only once read: a failed read (database away) is read again
        return rows

    # -- delivery ----------------------------------------------------------------------------
    async def dispatch(self, rows: list[dict]) -> None:
        """Deliver outbox rows (any order, duplicates allowed) to this process's subscribers."""
        by_stream: dict[tuple[str, int], list[dict]] = defaultdict(list)
        for row in rows:
            self._max_seen = max(self._max_seen, row["id"])
            stream = stream_of(row)
            if row["channel"] in ("book", "trades") and ("ticker", row["market_id"]) in self.subscribers:
                self._ticker_changed(row["market_id"])
            if row["channel"] == "candles":  # one row, a bar per interval: one stream each
                for interval in row["payload"]["candles"]:
                    candle_stream = (f"candles:{interval}", row["market_id"])
                    if candle_stream in self.subscribers:
                        by_stream[candle_stream].append(row)
            elif stream in self.subscribers:
                by_stream[stream].append(row)
        for stream, stream_rows in by_stream.items():
            if stream[0] == "trades" or stream[0].startswith("candles:"):
                await self._send_unsequenced(stream, stream_rows)
            else:
                await self._send_sequenced(stream, stream_rows)

    async def _send_unsequenced(self, stream, rows) -> None:
        """Trades and candles, in outbox order: the engine writes a market's batches one after
        another, so that is trade_id order."""
        last = self.cursor.get(stream, 0)
        for row in sorted(rows, key=trade_position):
            position = trade_position(row)
            if position <= last:
                continue
            last = position
            await self._fan_out(stream, *render(row, stream))
        self.cursor[stream] = last

    async def _send_sequenced(self, stream, rows) -> None:
        events = sorted({row["sequence"]: row for row in rows}.items())
        last = self.cursor.get(stream)
        if last is not None and events and events[-1][0] <= last:
            return
        if last is not None and events[0][0] > last + 1:
            # An announcement was lost or is late: read what is missing, in order.
            filled = await fetch_gap(stream, last, events[0][0])
            frames = filled + render_sequenced(row for _, row in events)
        else:
            frames = render_sequenced(row for _, row in events)
        for sequence, text in frames:
            if last is not None and sequence <= last:
                continue
            last = sequence
            await self._fan_out(stream, sequence, text)
        if last is not None:  # rows is never empty, so a first batch always sets it
            self.cursor[stream] = last

    async def _fan_out(self, stream, sequence: int | None, text: str) -> None:
        """One event to every local subscriber of ``stream``: the frame is encoded once and
        its bytes written to each socket; only a subscriber that is joining or behind takes
        the slower, awaited path."""
        started = time.perf_counter()
        wire = ws_text_frame(text.encode()) if settings.BOURSE_WS_RAW_WRITES else None
        for subscription in list(self.subscribers.get(stream, ())):
            if wire is None or not subscription.try_write(sequence, wire):
                await subscription.offer(sequence, text)
        metrics.WS_FANOUT.observe(time.perf_counter() - started)

    # -- ticker ------------------------------------------------------------------------------
    def _ticker_changed(self, market_id: int) -> None:
        if market_id in self._ticker_tasks:
            return  # one refresh is already scheduled; it reads the latest state
        delay = max(0.0, self._ticker_due.get(market_id, 0.0) - time.monotonic())
        self._ticker_tasks[market_id] = asyncio.ensure_future(self._send_ticker(market_id, delay))

    async def _send_ticker(self, market_id: int, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
            self._ticker_due[market_id] = time.monotonic() + settings.BOURSE_WS_TICKER_INTERVAL_S
            subscribers = list(self.subscribers.get(("ticker", market_id), ()))
            if not subscribers:
                return
            frame = await relay_db(ticker_frame, market_id)
            for subscription in subscribers:
                await subscription.offer(None, frame)
        finally:
            self._ticker_tasks.pop(market_id, None)


def ticker_frame(market_id: int) -> str:
    market = selectors.market_by_id(market_id)
    return dumps({"channel": f"ticker:{market.symbol}", "type": "ticker", "data": selectors.ticker(market)})
