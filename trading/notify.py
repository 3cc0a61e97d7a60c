"""Signals between the transports and the engine process, without polling on the hot path.

Two signals:
- *wake*: a command for market M was committed; the engine owning M takes it now.
- *verdict*: the engine committed a batch; the message carries each touched order's new
  engine-owned state (status, filled quantity and quote, sequence, reasons, updated_at), so
  a waiting caller answers from it without reading the database.

Both travel by Redis ``PUBLISH`` when ``REDIS_URL`` is set, sent right after the writing
transaction commits (a placement's wake-up goes in the same round trip as its outbox
announcement: ``trading.outbox.signal.announce``); on PostgreSQL without Redis by ``NOTIFY``,
in its own statement right after the commit (see ``_pg_notify`` for why not inside it). The
embedded SQLite mode uses unix datagram sockets under the data folder for both. A signal may
still be lost (a listener reconnecting, Redis away): waiters fall back to a bounded re-check of
the database (``VERDICT_RECHECK_S`` in the order services), and the engine reads every market
again once a second and whenever its listener has (re)subscribed, so nothing depends on
delivery for correctness.
"""
from __future__ import annotations

import json
import logging
import os
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, transaction

from exchange.pubsub import redis_db_channel, redis_direct, run_dir, send_datagram

if TYPE_CHECKING:
    import psycopg

    from .models import Order

log = logging.getLogger("bourse.notify")

WAKE_CHANNEL = "bourse_engine_wake"
REDIS_WAKE_PREFIX = "bourse:wake"  # + ":{redis db}": pub/sub ignores databases
WAKE_RESUBSCRIBE_S = 1.0  # the engine's listener tries Redis again this long after a failure
VERDICT_CHANNEL = "bourse_verdicts"
MAX_PAYLOAD = 7000  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more
REDIS_VERDICT_PREFIX = "bourse:verdicts"  # + ":{redis db}": pub/sub ignores databases
VERDICT_KEEP_S = 10.0  # how long a process remembers verdicts nobody waited for yet
VERDICT_KEEP_MAX = 200_000


def _uses_postgres() -> bool:
    return connection.vendor == "postgresql"


def _chunks(ids: list[int]) -> Iterator[str]:
    chunk: list[str] = []
    size = 0
    for value in ids:
        text = str(value)
        if size + len(text) + 1 > MAX_PAYLOAD:
            yield ",".join(chunk)
            chunk, size = [], 0
        chunk.append(text)
        size += len(text) + 1
    if chunk:
        yield ",".join(chunk)


# --- wake: transports -> engine ---------------------------------------------------------


def _pg_notify(channel: str, payloads) -> None:
    """NOTIFY in its own tiny transaction. PostgreSQL holds a cluster-wide lock while a
    transaction that issued NOTIFY commits — across its WAL flush — so a NOTIFY inside the
    order or batch transaction would serialise every commit behind every other (measured:
    4 concurrent order submissions took 41 ms each instead of ~10). A NOTIFY-only
    transaction writes no WAL and holds that lock only for an instant."""
    with connection.cursor() as cursor:
        for payload in payloads:
            cursor.execute("SELECT pg_notify(%s, %s)", [channel, payload])


def wake_engine(market_id: int) -> None:
    """Tell the engine owning ``market_id`` that a command is waiting. Call inside the
    transaction that wrote the command: the signal goes out right after it commits."""
    if _uses_redis():
        transaction.on_commit(lambda: _redis_wake(market_id))
    elif _uses_postgres():
        transaction.on_commit(lambda: _pg_notify(WAKE_CHANNEL, [str(market_id)]))
    else:
        transaction.on_commit(lambda: send_datagram(run_dir() / f"engine-{market_id}.sock", b"w"))


def redis_wake_channel() -> str:
    return redis_db_channel(REDIS_WAKE_PREFIX)


def redis_wake_command(market_id: int) -> tuple[str, str, str]:
    """The wake-up of ``market_id``'s engine as a Redis command, for a caller that sends it
    with its own (``trading.outbox.signal.announce``)."""
    return ("PUBLISH", redis_wake_channel(), str(market_id))


def _redis_wake(market_id: int) -> None:
    try:
        redis_direct().call(*redis_wake_command(market_id))
    except Exception:  # the engine reads every market once a second: late, not lost
        log.exception("could not wake the engine; its re-check will find the command")


class WakeListener:
    """The engine's side of *wake*: ``wait(timeout)`` returns the market ids woken (possibly
    empty on timeout)."""

    def __init__(self, market_ids):
        self.market_ids = set(market_ids)
        self._pg: psycopg.Connection[Any] | None = None
        self._redis: _RedisWakes | None = None
        self._socks: list[tuple[int, socket.socket]] = []
        if _uses_redis():
            self._redis = _RedisWakes()
        elif _uses_postgres():
            import psycopg

            params = connection.get_connection_params()
            self._pg = psycopg.connect(**params, autocommit=True)
            self._pg.execute(f"LISTEN {WAKE_CHANNEL}")
        else:
            self._pg = None
            for market_id in self.market_ids:
                path = run_dir() / f"engine-{market_id}.sock"
                path.unlink(missing_ok=True)
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.bind(str(path))
                sock.setblocking(False)
                self._socks.append((market_id, sock))

    def wait(self, timeout: float) -> set[int]:
        woken: set[int] = set()
        if self._redis is not None:
            return self._redis.wait(timeout, self.market_ids)
        if self._pg is not None:
            for notice in self._pg.notifies(timeout=timeout, stop_after=1):
                woken.add(int(notice.payload))
            for notice in self._pg.notifies(timeout=0):  # drain what else arrived
                woken.add(int(notice.payload))
            return woken & self.market_ids
        ready, _, _ = select.select([s for _, s in self._socks], [], [], timeout)
        for market_id, sock in self._socks:
            if sock in ready:
                woken.add(market_id)
                try:
                    while True:
                        sock.recv(64)
                except BlockingIOError:
                    pass
        return woken

    def close(self):
        if self._redis is not None:
            self._redis.close()
        if self._pg is not None:
            self._pg.close()
        for market_id, sock in self._socks:
            sock.close()
            (run_dir() / f"engine-{market_id}.sock").unlink(missing_ok=True)


class _RedisWakes:
    """The engine's subscription to the wake channel. Never raises: Redis away, ``wait``
    sleeps its timeout and tries again ``WAKE_RESUBSCRIBE_S`` after the failure; once
    (re)subscribed, it reports every market woken — a wake-up published while nobody was
    subscribed is lost, so everything is read once."""

    def __init__(self) -> None:
        self._pubsub: Any = None
        self._client: Any = None
        self._retry_at = 0.0
        self._subscribe()  # the engine reads every market after making its listener anyway

    def _subscribe(self) -> bool:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # No retries inside redis-py (by default ten, with back-off, ~4 s): the engine's loop
        # must not stall on a Redis outage; this listener retries on its own schedule.
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5.0, socket_connect_timeout=2.0,
                                      retry=Retry(NoBackoff(), 0))
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(redis_wake_channel())
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:  # confirmed: a wake-up published from now on reaches us
                message = pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
                if message is not None and message["type"] == "subscribe":
                    self._pubsub, self._client = pubsub, client
                    return True
            raise TimeoutError("no subscription confirmation")
        except Exception:  # noqa: BLE001 - Redis away: the engine's re-check reads every market
            log.warning("engine wake-up listener cannot subscribe; retrying", exc_info=True)
            pubsub.close()
            client.close()
            self._retry_at = time.monotonic() + WAKE_RESUBSCRIBE_S
            return False

    def wait(self, timeout: float, market_ids: set[int]) -> set[int]:
        if self._pubsub is None:
            now = time.monotonic()
            if now < self._retry_at:
                time.sleep(min(timeout, self._retry_at - now))
                return set()
            if not self._subscribe():
                return set()
            return set(market_ids)  # subscribed again: what was published meanwhile is lost, read all
        woken: set[int] = set()
        try:
            message = self._pubsub.get_message(timeout=timeout)
            while message is not None:
                if message["type"] == "message":
                    woken.add(int(message["data"]))
                message = self._pubsub.get_message(timeout=0)
        except Exception:  # noqa: BLE001 - the connection broke: subscribe again (and read everything)
            log.warning("engine wake-up listener lost Redis; resubscribing", exc_info=True)
            self.close()
            self._retry_at = time.monotonic() + WAKE_RESUBSCRIBE_S
        return woken & market_ids

    def close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            try:
                pubsub.close()
                self._client.close()
            except Exception:  # noqa: BLE001 - its connection is already gone
                log.debug("closing the wake-up subscription failed", exc_info=True)


# --- verdict: engine -> waiting callers --------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """An order's engine-owned columns as one batch committed them."""

    order_id: int
    status: str
    filled_quantity: Decimal
    filled_quote: Decimal
    sequence: int | None
    cancel_reason: str
    reject_reason: str
    updated_at: datetime

    @classmethod
    def of(cls, order: Order) -> Verdict:
        return cls(order.pk, order.status, order.filled_quantity, order.filled_quote, order.sequence,
                   order.cancel_reason, order.reject_reason, order.updated_at)

    def wire(self) -> list[Any]:
        return [self.order_id, self.status, str(self.filled_quantity), str(self.filled_quote), self.sequence,
                self.cancel_reason, self.reject_reason, self.updated_at.isoformat()]

    @classmethod
    def from_wire(cls, item: list[Any]) -> Verdict:
        order_id, status, filled, quote, sequence, cancel_reason, reject_reason, updated = item
        return cls(int(order_id), str(status), Decimal(filled), Decimal(quote),
                   None if sequence is None else int(sequence), str(cancel_reason), str(reject_reason),
                   datetime.fromisoformat(updated))

    def apply(self, order: Order) -> None:
        """Set ``order``'s engine-owned fields to this verdict (the rest never change after
        submission)."""
        order.status = self.status
        order.filled_quantity = self.filled_quantity
        order.filled_quote = self.filled_quote
        order.sequence = self.sequence
        order.cancel_reason = self.cancel_reason
        order.reject_reason = self.reject_reason
        order.updated_at = self.updated_at


def encode_verdicts(verdicts: Iterable[Verdict], hints: Iterable[int] = ()) -> Iterator[str]:
    """JSON arrays of at most ``MAX_PAYLOAD`` bytes: a verdict is an array, a bare id a hint
    ("this order changed: re-read it")."""
    items = [json.dumps(v.wire(), separators=(",", ":")) for v in verdicts] + [str(int(h)) for h in hints]
    chunk: list[str] = []
    size = 2
    for item in items:
        if chunk and size + len(item) + 1 > MAX_PAYLOAD:
            yield "[" + ",".join(chunk) + "]"
            chunk, size = [], 2
        chunk.append(item)
        size += len(item) + 1
    if chunk:
        yield "[" + ",".join(chunk) + "]"


def decode_verdicts(payload: str) -> tuple[list[Verdict], list[int]]:
    """``(verdicts, hint ids)`` of one message; a plain comma-separated id list is all hints."""
    if not payload.startswith("["):
        return [], [int(part) for part in payload.split(",") if part]
    verdicts, hints = [], []
    for item in json.loads(payload):
        if isinstance(item, list):
            verdicts.append(Verdict.from_wire(item))
        else:
            hints.append(int(item))
    return verdicts, hints


def _uses_redis() -> bool:
    return bool(settings.REDIS_URL)


def redis_verdict_channel() -> str:
    return redis_db_channel(REDIS_VERDICT_PREFIX)


def publish_verdicts(orders: Iterable[Order], hints: Iterable[int] = (),
                     also: Iterable[tuple[str, str]] = ()) -> None:
    """Announce the verdicts of ``orders`` (as they were committed) and, as bare hints, the
    ids in ``hints`` (a cancel that found no live order: its caller re-reads). Call after
    the batch committed. Never raises for a lost signal: waiters re-check. With Redis, the
    ``(channel, message)`` pairs of ``also`` go in the same round trip (the engine's outbox
    announcement: ``trading.outbox.signal.publish_batch``); without it they are ignored."""
    payloads = verdict_payloads(orders, hints)
    if _uses_redis():
        extra = list(also)
        if not payloads and not extra:
            return
        try:
            verdicts = redis_verdict_channel()
            redis_direct().pipeline([("PUBLISH", verdicts, payload) for payload in payloads]
                                    + [("PUBLISH", channel, message) for channel, message in extra])
        except Exception:  # waiters fall back to their bounded re-check, readers to their poll
            log.exception("could not publish verdicts; waiters will re-check")
        return
    if not payloads:
        return
    if _uses_postgres():
        _pg_notify(VERDICT_CHANNEL, payloads)
        return
    for path in run_dir().glob("waiter-*.sock"):
        for payload in payloads:
            if not send_datagram(path, payload.encode()):
                path.unlink(missing_ok=True)  # its process is gone
                break


def verdict_payloads(orders: Iterable[Order], hints: Iterable[int] = ()) -> list[str]:
    """The messages that carry the verdicts of ``orders`` and the bare ``hints``."""
    return list(encode_verdicts([Verdict.of(o) for o in orders], hints))


class VerdictWaiter:
    """One per process: a daemon thread receives verdict messages, remembers each order's
    latest verdict for ``VERDICT_KEEP_S`` (so one that lands before its caller registers is
    not missed) and wakes the threads waiting on those order ids."""

    _instance: VerdictWaiter | None = None
    _instance_lock = threading.Lock()

    @classmethod
    def get(cls) -> VerdictWaiter:
        with cls._instance_lock:
            if cls._instance is None or cls._instance._pid != os.getpid():
                cls._instance = cls()
            return cls._instance

    @classmethod
    def shutdown(cls) -> None:
        """Stop this process's listener (tests, before their database is dropped)."""
        with cls._instance_lock:
            instance, cls._instance = cls._instance, None
        if instance is not None:
            instance.stop()

    @classmethod
    def forget_recent(cls) -> None:
        """Drop the verdicts this process keeps for late waiters. Order ids never repeat in a
        database, except in tests that empty theirs between cases (SQLite's AUTOINCREMENT
        counter is reset with the tables): a kept verdict would answer the next order given
        the same id."""
        with cls._instance_lock:
            instance = cls._instance
        if instance is not None:
            with instance._lock:
                instance._recent.clear()

    def __init__(self, on_signal: Callable[[str], None] | None = None):
        """``on_signal``, when given, receives every verdict payload (a comma-separated id
        list) instead of this waiter waking registered order ids: a listener of its own,
        such as the FIX gateway's report reader, which reads what the batch wrote."""
        self._on_signal = on_signal
        self._pid = os.getpid()
        self._events: dict[int, set[threading.Event]] = {}
        self._recent: dict[int, tuple[float, Verdict]] = {}  # order id -> (received at, verdict)
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._redis = _uses_redis()
        self._postgres = not self._redis and _uses_postgres()
        self._params = connection.get_connection_params() if self._postgres else None
        self._thread = threading.Thread(target=self._run, name="bourse-verdicts", daemon=True)
        self._thread.start()
        self._ready.wait(2.0)

    def register(self, order_id: int, event: threading.Event | None = None) -> threading.Event:
        """Set ``event`` (a new one unless given) when a verdict for ``order_id`` arrives.
        Several waiters may register one order id, and one event may serve several ids
        (``order_cancel_all`` waits for all its orders on one event)."""
        event = event or threading.Event()
        with self._lock:
            self._events.setdefault(order_id, set()).add(event)
        return event

    def unregister(self, order_id: int, event: threading.Event | None = None) -> None:
        """Forget ``event`` (every event when None) for ``order_id``."""
        with self._lock:
            events = self._events.get(order_id)
            if events is None:
                return
            if event is None:
                events.clear()
            else:
                events.discard(event)
            if not events:
                del self._events[order_id]

    def verdict(self, order_id: int) -> Verdict | None:
        """The latest verdict received for ``order_id`` in the last ``VERDICT_KEEP_S``."""
        with self._lock:
            entry = self._recent.get(order_id)
        return entry[1] if entry is not None else None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening and wait for the listener thread to finish."""
        self._stopping.set()
        self._thread.join(timeout=timeout)

    def _deliver(self, payload: str) -> None:
        if self._on_signal is not None:
            self._on_signal(payload)
            return
        verdicts, hints = decode_verdicts(payload)
        now = time.monotonic()
        with self._lock:
            recent = self._recent
            for verdict in verdicts:
                known = recent.pop(verdict.order_id, None)  # re-inserted last: the dict stays in arrival order
                if known is not None and known[1].updated_at > verdict.updated_at:
                    verdict = known[1]  # an older verdict arriving late never replaces a newer one
                recent[verdict.order_id] = (now, verdict)
                for event in self._events.get(verdict.order_id, ()):
                    event.set()
            for order_id in hints:
                recent.pop(order_id, None)  # changed since: only the database knows
                for event in self._events.get(order_id, ()):
                    event.set()
            while recent:
                oldest = next(iter(recent))
                if now - recent[oldest][0] <= VERDICT_KEEP_S and len(recent) <= VERDICT_KEEP_MAX:
                    break
                del recent[oldest]

    def _run(self):
        while not self._stopping.is_set():
            try:
                if self._redis:
                    self._run_redis()
                elif self._postgres:
                    self._run_postgres()
                else:
                    self._run_socket()
            except Exception:  # keep the waiter alive; callers fall back to re-reading
                log.exception("verdict listener failed; restarting")
                threading.Event().wait(0.5)

    def _run_redis(self):
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5.0)
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(redis_verdict_channel())
            while not self._stopping.is_set():
                message = pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    self._ready.set()  # listening: a verdict published from now on reaches us
                elif message["type"] == "message":
                    self._deliver(message["data"].decode())
        finally:
            pubsub.close()
            client.close()

    def _run_postgres(self):
        import psycopg

        assert self._params is not None  # read whenever the database is PostgreSQL
        with psycopg.connect(**self._params, autocommit=True) as pg:
            pg.execute(f"LISTEN {VERDICT_CHANNEL}")
            self._ready.set()
            while not self._stopping.is_set():
                for notice in pg.notifies(timeout=1.0):
                    self._deliver(notice.payload)

    def _run_socket(self):
        path = run_dir() / f"waiter-{os.getpid()}-{uuid.uuid4().hex[:8]}.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        sock.settimeout(1.0)
        self._ready.set()
        try:
            while not self._stopping.is_set():
                try:
                    self._deliver(sock.recv(MAX_PAYLOAD + 16).decode())
                except TimeoutError:
                    pass
        finally:
            sock.close()
            path.unlink(missing_ok=True)
