"""Key-state events: every process learns at once that a key changed in a way that matters.

A key-state event names the keys (public ``key_id``) whose standing changed, and why:

==================== ============================================================
``kind``             published by
==================== ============================================================
``revoked``          ``apikeys.services.apikey_revoke``
``scopes_changed``   ``apikeys.services.apikey_update`` (scopes)
``allowlist_changed````apikeys.services.apikey_update`` (IP allowlist)
``expiry_changed``   ``apikeys.services.apikey_update`` (``expires_at`` set, moved or cleared)
``owner_deactivated````User.is_active`` turned off (the console's *Active* flag): every key
                     of every account the user owns
``owner_reactivated````User.is_active`` turned back on
==================== ============================================================

Expiry passing is not an event (nothing commits when it happens): a holder of a key's state
reads ``expires_at`` and keeps a timer (``apikeys.live`` does).

Delivery, after the writing transaction commits (``publish`` defers itself with
``transaction.on_commit``):

- with ``REDIS_URL``: one Redis ``PUBLISH`` on ``bourse:keys:{db}`` (the channel is per Redis
  database, like the outbox signal: pub/sub ignores databases, and two deployments may share
  a server);
- embedded: one unix datagram to each subscribed process's socket under the data folder
  (``run/keys-*.sock``).

An event is a hint, never the truth: a subscriber re-reads the key from the database. Pub/sub
is at-most-once (a subscriber disconnected from Redis misses what was published meanwhile), so
``subscribe`` also calls back with a ``recheck`` event every ``BOURSE_KEY_RECHECK_S`` seconds
(default 5): a subscriber then re-reads every key it holds, and a lost event still takes
effect within that bound.

API (everything a per-process key cache or a live-session registry needs)::

    from apikeys import events

    subscription = events.subscribe(callback)   # callback(event: KeyEvent), on a listener thread
    subscription.close()
    events.publish("revoked", ["bk_..."])       # services do this; after commit

Callbacks run on the process's listener thread: keep them short and thread-safe (hand work
to an event loop with ``loop.call_soon_threadsafe``). A callback that raises is logged and
does not stop the others.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from exchange import pubsub

log = logging.getLogger("bourse.auth")

KINDS = (
    "revoked",
    "scopes_changed",
    "allowlist_changed",
    "expiry_changed",
    "owner_deactivated",
    "owner_reactivated",
)
RECHECK = "recheck"  # not published: the periodic call every subscriber receives
REDIS_CHANNEL_PREFIX = "bourse:keys"  # + ":{redis db}"
MAX_KEYS_PER_MESSAGE = 1000  # keeps a datagram well under the default unix buffer
SOCKET_GLOB = "keys-*.sock"


@dataclass(frozen=True)
class KeyEvent:
    """``kind`` (one of ``KINDS``, or ``recheck``) and the ``key_ids`` it concerns (empty for
    ``recheck``: re-read every key you hold)."""

    kind: str
    key_ids: tuple[str, ...] = field(default_factory=tuple)

    def encode(self) -> bytes:
        return json.dumps({"kind": self.kind, "key_ids": list(self.key_ids)}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes | str) -> KeyEvent | None:
        try:
            data = json.loads(raw)
            kind, key_ids = data["kind"], data["key_ids"]
        except (ValueError, KeyError, TypeError):
            return None
        if kind not in KINDS or not isinstance(key_ids, list) or not all(isinstance(k, str) for k in key_ids):
            return None
        return cls(kind, tuple(key_ids))


# --- publishing -----------------------------------------------------------------------------


def publish(kind: str, key_ids: Iterable[str]) -> None:
    """Announce ``kind`` for ``key_ids`` to every process once the current transaction
    commits (at once outside a transaction). Never raises: a lost event is caught by the
    subscribers' periodic re-check."""
    if kind not in KINDS:
        raise ValueError(f"unknown key-state event {kind!r}")
    ids = tuple(dict.fromkeys(key_ids))
    if not ids:
        return
    transaction.on_commit(lambda: _send(kind, ids), robust=True)


def _send(kind: str, key_ids: tuple[str, ...]) -> None:
    try:
        for start in range(0, len(key_ids), MAX_KEYS_PER_MESSAGE):
            payload = KeyEvent(kind, key_ids[start:start + MAX_KEYS_PER_MESSAGE]).encode()
            if settings.REDIS_URL:
                pubsub.redis_client().publish(redis_channel(), payload)
            else:
                for path in pubsub.run_dir().glob(SOCKET_GLOB):
                    if not pubsub.send_datagram(path, payload):
                        path.unlink(missing_ok=True)  # its process is gone
        log.info("key-state event published", extra={"kind": kind, "keys": len(key_ids)})
    except Exception:
        log.exception("could not publish a key-state event; subscribers' re-check will find it")


def redis_channel() -> str:
    return pubsub.redis_db_channel(REDIS_CHANNEL_PREFIX)


# --- subscribing ----------------------------------------------------------------------------


class Subscription:
    def __init__(self, callback: Callable[[KeyEvent], None]):
        self.callback = callback

    def close(self) -> None:
        """Stop receiving events (the process's listener stops with its last subscriber)."""
        _Listener.remove(self)


def subscribe(callback: Callable[[KeyEvent], None]) -> Subscription:
    """Call ``callback(event)`` for every key-state event any process publishes from now on,
    and with ``KeyEvent("recheck")`` every ``BOURSE_KEY_RECHECK_S`` seconds. Returns a
    ``Subscription``; ``close()`` it when done. Safe to call from any thread."""
    subscription = Subscription(callback)
    _Listener.add(subscription)
    return subscription


def recheck_interval() -> float:
    return float(getattr(settings, "BOURSE_KEY_RECHECK_S", 5.0))


class _Listener:
    """One per process: a daemon thread reading the transport and calling the subscribers."""

    _instance: _Listener | None = None
    _lock = threading.Lock()

    @classmethod
    def add(cls, subscription: Subscription) -> None:
        with cls._lock:
            if cls._instance is None or cls._instance.pid != os.getpid() or cls._instance.stopping.is_set():
                cls._instance = cls()
            cls._instance.subscriptions.add(subscription)
            instance = cls._instance
        instance.ready.wait(2.0)

    @classmethod
    def remove(cls, subscription: Subscription) -> None:
        with cls._lock:
            instance = cls._instance
            if instance is None:
                return
            instance.subscriptions.discard(subscription)
            if not instance.subscriptions:
                instance.stopping.set()
                cls._instance = None

    def __init__(self):
        self.pid = os.getpid()
        self.subscriptions: set[Subscription] = set()
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bourse-key-events", daemon=True)
        self.thread.start()

    def _deliver(self, event: KeyEvent) -> None:
        for subscription in list(self.subscriptions):
            try:
                subscription.callback(event)
            except Exception:
                log.exception("a key-state event subscriber failed")

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                if settings.REDIS_URL:
                    self._run_redis()
                else:
                    self._run_socket()
            except Exception:
                log.exception("key-state event listener failed; restarting")
                self.ready.set()
                self.stopping.wait(0.5)
                self._deliver(KeyEvent(RECHECK))  # events may have been missed meanwhile

    def _tick(self, last: float) -> float:
        import time

        now = time.monotonic()
        if now - last >= recheck_interval():
            self._deliver(KeyEvent(RECHECK))
            return now
        return last

    def _run_redis(self) -> None:
        import time

        import redis

        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=None, health_check_interval=10)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(redis_channel())
            self.ready.set()
            last = time.monotonic()
            while not self.stopping.is_set():
                message = pubsub.get_message(timeout=0.5)
                if message is not None and message.get("type") == "message":
                    event = KeyEvent.decode(message["data"])
                    if event is not None:
                        self._deliver(event)
                last = self._tick(last)
        finally:
            pubsub.close()
            client.close()

    def _run_socket(self) -> None:
        import time

        path = pubsub.run_dir() / f"keys-{os.getpid()}-{uuid.uuid4().hex[:8]}.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        sock.settimeout(0.5)
        self.ready.set()
        last = time.monotonic()
        try:
            while not self.stopping.is_set():
                try:
                    event = KeyEvent.decode(sock.recv(1 << 16))
                except TimeoutError:
                    event = None
                if event is not None:
                    self._deliver(event)
                last = self._tick(last)
        finally:
            sock.close()
            path.unlink(missing_ok=True)
