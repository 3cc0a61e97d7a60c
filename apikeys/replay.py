"""The replay guard: a signed message is accepted at most once.

One atomic set-if-absent in the shared cache: ``SET key 1 NX PX ttl`` on Redis in
production, an ``INSERT`` under SQLite's write lock in the embedded mode
(``exchange.sqlitecache``). Either way two processes racing with the same nonce cannot
both win.

A nonce is remembered for the longest window a request may claim (60 s) plus the allowed
clock lead (1 s), not for the window of the request that used it: ``X-API-Window`` is not
part of the signed string, so a replayer could otherwise resend a captured request with a
longer window after a short-window nonce had been forgotten. A request signed for the
future is remembered until its timestamp, plus that.

Every message whose signature verified claims its nonce, whether it is then accepted or
refused (its timestamp outside the window, its key's state, address, scope, a rate limit):
a refused request can never come back, not even with a longer window.

**Losing the store.** Redis without persistence forgets every nonce when it restarts (and
an evicting ``maxmemory-policy`` forgets some at any time). So the store carries an
*epoch*: the moment it started remembering, written (without expiry) by the first claim
that finds it absent. A request signed before the epoch is refused
(``replay_guard_reset``): the guard cannot tell whether it was used before the loss. After
a restart the first requests in flight are refused once; clients sign again.
"""
from django.core.cache import cache

MAX_WINDOW_MS = 60_000
FUTURE_SKEW_MS = 1_000
_RETENTION_S = (MAX_WINDOW_MS + FUTURE_SKEW_MS) / 1000 + 1  # one spare second for clock jitter
# A request signed further ahead than this keeps its nonce no longer (a day).
_MAX_RETENTION_S = 86_400
EPOCH_KEY = "nonce-epoch"


def nonce_key(key_id: str, nonce: str) -> str:
    return f"nonce:{key_id}:{nonce}"


def nonce_ttl_s(timestamp_ms: int | None, now_ms: int | None) -> float:
    """How long a nonce signed at ``timestamp_ms`` is remembered (seconds)."""
    if timestamp_ms is not None and now_ms is not None and timestamp_ms > now_ms:
        return min(_MAX_RETENTION_S, _RETENTION_S + (timestamp_ms - now_ms) / 1000)
    return _RETENTION_S


def nonce_claim(key_id: str, nonce: str, *, timestamp_ms: int | None = None, now_ms: int | None = None) -> bool:
    """Record the nonce; False when this key already used it inside the retention. (The
    verifier claims through ``apikeys.gate``, which does this in the same round trip as the
    budgets; this is the same claim on its own.)"""
    return cache.add(nonce_key(key_id, nonce), 1, timeout=nonce_ttl_s(timestamp_ms, now_ms))


def store_epoch_ms(now_ms: int) -> int:
    """Since when (epoch ms) the store has remembered every nonce. A store found without its
    epoch (new, restarted without persistence, flushed, or the key evicted) starts one now."""
    epoch = cache.get(EPOCH_KEY)
    if epoch is None:
        cache.add(EPOCH_KEY, now_ms, timeout=None)
        epoch = cache.get(EPOCH_KEY, now_ms)
    return int(epoch)


def mark_new_store_fresh() -> bool:
    """For a durable store (the embedded mode's SQLite cache, which no restart empties): one
    without an epoch is a new file, so nothing was lost and nothing signed before it needs
    refusing. True when it was new. Never for Redis: there an absent epoch may mean a restart."""
    return bool(cache.add(EPOCH_KEY, 0, timeout=None))


def mark_store_fresh() -> None:
    """Declare the (just emptied) store complete since the beginning of time: for tests and
    for a store an operator knows to be new, never after losing data."""
    cache.set(EPOCH_KEY, 0, timeout=None)
