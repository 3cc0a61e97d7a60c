"""The per-process cache of API key records the verifier authenticates from.

Without it every signed request read the key and its owner from the database and decrypted
the key's secret (two queries and a Fernet decryption, ~1 ms of CPU). An entry holds the
key (with its account and owner), the decrypted HMAC secret, and when it was read. It is
trusted for ``BOURSE_KEY_CACHE_S`` seconds (1 by default): so a revocation, expiry, scope,
allowlist or owner change made anywhere bites within that bound even if nothing tells this
process. Sooner in practice: the cache subscribes to the key-state events
(``apikeys.events``) on first use, and an event naming a key drops its entry at once in every
process; the key services also ``forget`` in their own.

Keeping entries fresh is not the requests' work: a request finding its key's entry expired
read the key again (one ORM query: each active key, once a second, in every process). The
process's revalidator thread instead re-reads, every half lifetime, every key used lately in
ONE query and compares it (key, account, owner) with the entry: unchanged, the entry is
trusted again from the moment the query started; changed, the entry is dropped and the next
request reads the key itself; not found, it is left to expire. Revalidation only ever
confirms what a request read, so it can never make a change older than the lifetime count as
current. (``BOURSE_KEY_REVALIDATE`` off: no thread; the test suite's processes run so.)

Unknown key ids are cached too, as misses: a prober then pays the same on a hit (one HMAC
with a decoy secret) as a client with a real key (one HMAC with its own), and on a miss the
same query and decryption, so timing does not tell which key ids exist. The cache is bounded
(``MAX_ENTRIES``, least recently used out), so random key ids cannot grow it without end.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.models import Model

from . import crypto, events
from .models import ApiKey

log = logging.getLogger("bourse.auth")

MAX_ENTRIES = 10_000
# The revalidator keeps the entries used within this many lifetimes fresh; the others expire
# and are read again by the request that next wants them.
RECENT_LIFETIMES = 5
MIN_REVALIDATE_S = 0.05


@dataclass(frozen=True)
class CachedKey:
    key: ApiKey | None  # None: no such key id
    secret: bytes | None  # the HMAC secret, decrypted (a decoy's for unknown ids); None for Ed25519
    loaded_at: float


_entries: OrderedDict[str, CachedKey] = OrderedDict()
_used: dict[str, float] = {}  # key id -> when a request last asked for it (monotonic)
_lock = threading.Lock()
_decoy: tuple[tuple[str, ...], bytes, bytes] | None = None  # (key ring, encrypted, decrypted)


def _ttl() -> float:
    return float(getattr(settings, "BOURSE_KEY_CACHE_S", 1.0))


def _decoy_token() -> tuple[bytes, bytes]:
    """A random secret, encrypted under the current key ring, and in clear: an unknown key id
    is checked with it, after the same decryption a real key's first look-up costs."""
    global _decoy
    ring = tuple(settings.BOURSE_ENCRYPTION_KEYS)
    if _decoy is None or _decoy[0] != ring:
        secret = crypto.new_hmac_secret()
        _decoy = (ring, crypto.encrypt_secret(secret), secret.encode())
    return _decoy[1], _decoy[2]


def unknown() -> CachedKey:
    """The record of a key id that cannot exist (malformed): a decoy, without a look-up."""
    return CachedKey(None, _decoy_token()[1], time.monotonic())


def _load(key_id: str, previous: CachedKey | None = None) -> CachedKey:
    """Read ``key_id``'s record. ``previous``: its expired entry, whose decrypted secret is
    reused when the stored ciphertext is unchanged (a refresh costs the query, not the
    decryption; an unknown id's refresh likewise skips the decoy's)."""
    key = ApiKey.objects.select_related("account", "account__owner").filter(key_id=key_id).first()
    if key is None:
        if previous is not None and previous.key is None:
            return CachedKey(None, previous.secret, time.monotonic())
        token, decoy_secret = _decoy_token()
        crypto.decrypt_secret(token)  # the same work as a real HMAC key's first look-up
        return CachedKey(None, decoy_secret, time.monotonic())
    secret: bytes | None = None
    if key.scheme == ApiKey.Scheme.HMAC:
        assert key.secret_encrypted is not None  # the database constraint: an HMAC key has its secret
        if (previous is not None and previous.key is not None and previous.key.pk == key.pk
                and previous.key.secret_encrypted == key.secret_encrypted):
            secret = previous.secret
        else:
            secret = crypto.decrypt_secret(key.secret_encrypted).encode()
    return CachedKey(key, secret, time.monotonic())


def _values(key: ApiKey) -> tuple:
    """Everything an entry holds of a key, its account and the account's owner."""
    objects: tuple[Model | None, ...] = (key, key.account, key.account.owner)
    return tuple(None if obj is None else tuple(field.value_from_object(obj) for field in obj._meta.concrete_fields)
                 for obj in objects)


def revalidate() -> tuple[int, int]:
    """Confirm in one query the keys requests used lately: ``(kept, dropped)``. An entry
    whose key, account and owner read now exactly as cached is trusted again from the start
    of the query; one read differently is dropped; one not found (deleted, or not yet visible
    to this connection) is left to expire. An entry replaced or dropped meanwhile (an event, a
    request's own read) is left alone."""
    ttl = _ttl()
    if ttl <= 0:
        return 0, 0
    now = time.monotonic()
    with _lock:
        held = {key_id: entry for key_id, entry in _entries.items()
                if entry.key is not None and now - _used.get(key_id, 0.0) < ttl * RECENT_LIFETIMES}
    if not held:
        return 0, 0
    started = time.monotonic()
    rows = {key.key_id: key for key in
            ApiKey.objects.select_related("account", "account__owner").filter(key_id__in=list(held))}
    kept = dropped = 0
    with _lock:
        for key_id, entry in held.items():
            if _entries.get(key_id) is not entry:
                continue
            row = rows.get(key_id)
            assert entry.key is not None
            if row is None:
                continue
            if _values(row) == _values(entry.key):
                _entries[key_id] = CachedKey(entry.key, entry.secret, started)
                kept += 1
            else:
                _entries.pop(key_id, None)
                _used.pop(key_id, None)
                dropped += 1
    return kept, dropped


def _revalidator_loop() -> None:
    """The process's revalidator thread: ``revalidate`` every half lifetime, on a database
    connection of its own that it keeps (a failure closes it; the next round reconnects)."""
    while True:
        time.sleep(max(_ttl() / 2, MIN_REVALIDATE_S))
        try:
            revalidate()
        except Exception:  # noqa: BLE001 - requests then read their keys themselves, as without it
            log.warning("key cache revalidation failed", exc_info=True)
            connection.close()


_subscribed: int | None = None  # the pid that subscribed to the key-state events


def _on_key_event(event: events.KeyEvent) -> None:
    for key_id in event.key_ids:  # a periodic ``recheck`` names none: the lifetime covers it
        forget(key_id)


def _subscribe() -> None:
    global _subscribed
    with _lock:
        if _subscribed == os.getpid():
            return
        _subscribed = os.getpid()
    events.subscribe(_on_key_event)
    if getattr(settings, "BOURSE_KEY_REVALIDATE", True):
        threading.Thread(target=_revalidator_loop, name="key-revalidator", daemon=True).start()


def key_get(key_id: str) -> CachedKey:
    """The cached record of ``key_id`` (``.key`` None when no such key exists), read from the
    database when absent or older than the cache's lifetime."""
    if _subscribed != os.getpid():
        _subscribe()
    ttl = _ttl()
    now = time.monotonic()
    with _lock:
        entry = _entries.get(key_id)
        if entry is not None and now - entry.loaded_at < ttl:
            _entries.move_to_end(key_id)
            _used[key_id] = now
            return entry
    entry = _load(key_id, entry)
    if ttl > 0:
        with _lock:
            _entries[key_id] = entry
            _entries.move_to_end(key_id)
            _used[key_id] = now
            while len(_entries) > MAX_ENTRIES:
                _used.pop(_entries.popitem(last=False)[0], None)
    return entry


def forget(key_id: str) -> None:
    """Drop ``key_id``'s entry: the next request reads the key again."""
    with _lock:
        _entries.pop(key_id, None)
        _used.pop(key_id, None)


def forget_all() -> None:
    with _lock:
        _entries.clear()
        _used.clear()
