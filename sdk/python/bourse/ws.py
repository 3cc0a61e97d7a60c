"""The WebSocket client (asyncio, ``websockets``): signed ``auth``, subscriptions, local order
books kept by sequence (and checksum when frames carry one) with a resubscription on a gap,
and private streams resumed with ``since`` after a reconnection (no gap, no duplicate)."""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import zlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from ._signing import Signer, new_nonce, signed_string, signer_for
from .errors import BourseError, GapError

__all__ = ["Stream", "OrderBook", "PRIVATE_CHANNELS", "book_checksum"]

PRIVATE_CHANNELS = frozenset({"orders", "fills", "balances"})
WS_PATH = "/ws/v1"


def _key(price: str) -> tuple[int, int]:
    """Sort key of a decimal string without float rounding: (integer part, fraction scaled)."""
    whole, _, frac = price.partition(".")
    return int(whole or "0"), int((frac + "0" * 30)[:30])


def book_checksum(bids: list[list[str]], asks: list[list[str]], depth: int = 25) -> int:
    """CRC32 (unsigned) of ``bid_price:bid_qty:ask_price:ask_qty:…`` over the top ``depth`` levels."""
    parts: list[str] = []
    for i in range(depth):
        if i < len(bids):
            parts += bids[i][:2]
        if i < len(asks):
            parts += asks[i][:2]
    return zlib.crc32(":".join(parts).encode()) & 0xFFFFFFFF


class OrderBook:
    """A level-2 book built from a ``snapshot`` frame and kept by ``update`` frames."""

    def __init__(self, market: str) -> None:
        self.market = market
        self.sequence: int | None = None
        self._bids: dict[str, str] = {}
        self._asks: dict[str, str] = {}

    @property
    def ready(self) -> bool:
        return self.sequence is not None

    def apply(self, frame: Mapping[str, Any]) -> None:
        """Applies a snapshot or update; raises ``GapError`` when the sequence jumps or the checksum differs."""
        if frame["type"] == "snapshot":
            self._bids = {p: q for p, q in frame["bids"]}
            self._asks = {p: q for p, q in frame["asks"]}
            self.sequence = int(frame["sequence"])
        else:
            if self.sequence is None:
                raise GapError(f"{self.market}: update {frame['sequence']} before any snapshot")
            if int(frame["sequence"]) != self.sequence + 1:
                expected = self.sequence + 1
                self.sequence = None
                raise GapError(f"{self.market}: expected sequence {expected}, got {frame['sequence']}")
            for side, levels in (("bids", self._bids), ("asks", self._asks)):
                for price, quantity in frame[side]:
                    if _key(quantity) == (0, 0):
                        levels.pop(price, None)
                    else:
                        levels[price] = quantity
            self.sequence = int(frame["sequence"])
        if "checksum" in frame and frame["checksum"] is not None:
            mine = book_checksum(self.bids(25), self.asks(25))
            if mine != int(frame["checksum"]):
                self.sequence = None
                raise GapError(f"{self.market}: checksum {mine} != {frame['checksum']} at {frame['sequence']}")

    def bids(self, depth: int | None = None) -> list[list[str]]:
        """``[[price, quantity], ...]`` best (highest) first, as ``GET /markets/{symbol}/book`` lists them."""
        levels = sorted(self._bids.items(), key=lambda kv: _key(kv[0]), reverse=True)
        return [[p, q] for p, q in levels[:depth]]

    def asks(self, depth: int | None = None) -> list[list[str]]:
        levels = sorted(self._asks.items(), key=lambda kv: _key(kv[0]))
        return [[p, q] for p, q in levels[:depth]]


class Stream:
    """One WebSocket connection to ``{url}/ws/v1`` that reconnects by itself.

    ``async with Stream(url, key, secret) as stream:`` authenticates when credentials are
    given; ``await stream.subscribe([...])``; ``async for frame in stream`` yields channel
    frames (book frames after they are applied to ``stream.book(symbol)``; private events at
    most once each, in sequence). After a dropped connection it reconnects, authenticates,
    takes a fresh book snapshot and resumes private channels with ``since``."""

    def __init__(self, url: str, key: str | None = None, secret: str | None = None,
                 private_key: str | bytes | None = None, *, reconnect: bool = True,
                 clock_offset_ms: int = 0, reply_timeout: float = 10.0, max_reconnect_delay: float = 5.0) -> None:
        base = url.rstrip("/")
        if base.startswith("http"):
            base = "ws" + base[4:]
        self.url = base if base.endswith(WS_PATH) else base + WS_PATH
        self.key = key
        self._signer: Signer | None = None
        if secret is not None or private_key is not None:
            if not key:
                raise ValueError("a key id is required with a secret or private key")
            self._signer = signer_for(secret=secret, private_key=private_key)
        self.reconnect = reconnect
        self.clock_offset_ms = clock_offset_ms
        self.reply_timeout = reply_timeout
        self.max_reconnect_delay = max_reconnect_delay
        self.account_id: str | None = None
        #: the last sequence processed per private channel (what ``since`` resumes from)
        self.last_sequence: dict[str, int] = {}
        #: how many times the connection was re-established
        self.reconnects = 0
        self._channels: list[str] = []
        self._books: dict[str, OrderBook] = {}
        self._ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._queue: asyncio.Queue[dict[str, Any] | BaseException] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self._connected = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------
    async def __aenter__(self) -> Stream:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        await self._open()
        self._reader = asyncio.create_task(self._run())

    async def close(self) -> None:
        self._closing = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._ws is not None:
            await self._ws.close()

    @property
    def connection(self) -> ClientConnection | None:
        """The current ``websockets`` connection (e.g. to abort it in a test)."""
        return self._ws

    async def _open(self) -> None:
        self._connected.clear()
        self._ws = await websockets.connect(self.url, max_size=2 ** 22)
        # The reader is not running yet on the first connection; requests read their own replies.
        if self._signer is not None:
            reply = await self._direct({"op": "auth", **self._auth_fields()})
            self.account_id = str(reply.get("account_id"))
        self._connected.set()

    def _auth_fields(self) -> dict[str, Any]:
        assert self._signer is not None
        timestamp = str(int(time.time() * 1000) + self.clock_offset_ms)
        nonce = new_nonce()
        signature = self._signer.sign(signed_string(timestamp, nonce, "GET", WS_PATH, "", b""))
        return {"key": self.key, "timestamp": timestamp, "nonce": nonce, "signature": signature}

    async def _direct(self, message: dict[str, Any]) -> dict[str, Any]:
        """Sends a request and reads frames until its reply (before the reader task exists)."""
        assert self._ws is not None
        message = {**message, "id": next(self._ids)}
        await self._ws.send(json.dumps(message))
        while True:
            frame = json.loads(await asyncio.wait_for(self._ws.recv(), self.reply_timeout))
            if frame.get("id") == message["id"]:
                if frame.get("type") == "error":
                    raise BourseError.from_problem(None, frame)
                return dict(frame)
            await self._dispatch(frame)

    async def _run(self) -> None:
        delay = 0.1
        while not self._closing:
            try:
                assert self._ws is not None
                async for raw in self._ws:
                    await self._dispatch(json.loads(raw))
                if self._closing:
                    return
            except asyncio.CancelledError:
                raise
            except (websockets.ConnectionClosed, OSError):
                pass
            self._fail_pending(ConnectionError("connection lost"))
            if not self.reconnect or self._closing:
                await self._queue.put(ConnectionError("connection lost"))
                return
            while not self._closing:
                try:
                    await self._open()
                    await self._resubscribe()
                    self.reconnects += 1
                    delay = 0.1
                    break
                except (TimeoutError, OSError, websockets.WebSocketException, BourseError) as exc:
                    if isinstance(exc, BourseError) and exc.code not in ("rate_limited", "too_many_connections"):
                        await self._queue.put(exc)
                        return
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.max_reconnect_delay)

    def _fail_pending(self, exc: BaseException) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(exc)
        self._pending.clear()

    async def _resubscribe(self) -> None:
        if not self._channels:
            return
        for name in self._channels:
            if name.startswith("book:"):
                self._books[name[5:]].sequence = None
        since = {c: self.last_sequence[c] for c in self._channels if c in PRIVATE_CHANNELS and c in self.last_sequence}
        message: dict[str, Any] = {"op": "subscribe", "channels": list(self._channels)}
        if since:
            message["since"] = since
        await self._direct(message)

    # -- requests ----------------------------------------------------------------------------
    async def _request(self, message: dict[str, Any]) -> dict[str, Any]:
        await asyncio.wait_for(self._connected.wait(), self.reply_timeout)
        assert self._ws is not None
        message_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        await self._ws.send(json.dumps({**message, "id": message_id}))
        try:
            return await asyncio.wait_for(future, self.reply_timeout)
        finally:
            self._pending.pop(message_id, None)

    async def subscribe(self, channels: list[str], since: int | Mapping[str, int] | None = None) -> dict[str, Any]:
        """Subscribes; returns the ``subscribed`` reply. ``since`` resumes private channels."""
        for name in channels:
            if name.startswith("book:"):
                self._books.setdefault(name[5:], OrderBook(name[5:]))
        message: dict[str, Any] = {"op": "subscribe", "channels": channels}
        if since is not None:
            message["since"] = since if isinstance(since, int) else dict(since)
        reply = await self._request(message)
        for entry in reply["channels"]:
            name = entry["channel"]
            if name not in self._channels:
                self._channels.append(name)
            if name in PRIVATE_CHANNELS and since is None and entry.get("sequence") is not None:
                self.last_sequence.setdefault(name, int(entry["sequence"]))
        return reply

    async def unsubscribe(self, channels: list[str]) -> dict[str, Any]:
        reply = await self._request({"op": "unsubscribe", "channels": channels})
        self._channels = [c for c in self._channels if c not in channels]
        return reply

    async def ping(self) -> dict[str, Any]:
        return await self._request({"op": "ping"})

    def book(self, symbol: str) -> OrderBook:
        return self._books[symbol]

    # -- frames ------------------------------------------------------------------------------
    async def _dispatch(self, frame: dict[str, Any]) -> None:
        message_id = frame.get("id")
        if isinstance(message_id, int) and message_id in self._pending:
            future = self._pending.pop(message_id)
            if not future.done():
                if frame.get("type") == "error":
                    future.set_exception(BourseError.from_problem(None, frame))
                else:
                    future.set_result(frame)
            return
        channel = frame.get("channel")
        kind = frame.get("type")
        if kind == "error":
            if isinstance(channel, str) and channel in self._channels:
                await self._resync(channel)
                return
            await self._queue.put(BourseError.from_problem(None, frame))
            return
        if not isinstance(channel, str):
            return
        if channel.startswith("book:") and kind in ("snapshot", "update"):
            book = self._books.get(channel[5:])
            if book is None:
                return
            if kind == "update" and not book.ready:
                return  # waiting for the new snapshot after a gap
            try:
                book.apply(frame)
            except GapError:
                await self._resync(channel)
                return
        elif channel in PRIVATE_CHANNELS and "sequence" in frame:
            sequence = int(frame["sequence"])
            last = self.last_sequence.get(channel)
            if last is not None and sequence <= last:
                return  # already processed (a replay overlapping what we had)
            if last is not None and sequence != last + 1:
                await self._send({"op": "unsubscribe", "channels": [channel]})
                await self._send({"op": "subscribe", "channels": [channel], "since": {channel: last}})
                return
            self.last_sequence[channel] = sequence
        await self._queue.put(frame)

    async def _send(self, message: dict[str, Any]) -> None:
        if self._ws is not None:
            await self._ws.send(json.dumps({**message, "id": f"sdk-{next(self._ids)}"}))

    async def _resync(self, channel: str) -> None:
        """Unsubscribes and subscribes again: a new snapshot (book) or a replay from ``since``."""
        if channel.startswith("book:"):
            self._books[channel[5:]].sequence = None
        await self._send({"op": "unsubscribe", "channels": [channel]})
        message: dict[str, Any] = {"op": "subscribe", "channels": [channel]}
        if channel in PRIVATE_CHANNELS and channel in self.last_sequence:
            message["since"] = {channel: self.last_sequence[channel]}
        await self._send(message)

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self.next()

    async def next(self, timeout: float | None = None) -> dict[str, Any]:
        """The next channel frame; raises what ended the stream (a ``BourseError``, ``ConnectionError``)."""
        item = await asyncio.wait_for(self._queue.get(), timeout)
        if isinstance(item, BaseException):
            raise item
        return item
