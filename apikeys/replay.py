"""The replay guard: a nonce is accepted once per key within the signing window.

One atomic set-if-absent in the shared cache: ``SET key 1 NX PX ttl`` on Redis in
production, an ``INSERT`` under SQLite's write lock in the embedded mode
(``exchange.sqlitecache``). Either way two processes racing with the same nonce cannot
both win.

A nonce is remembered for the longest window a request may claim (60 s) plus the allowed
clock lead (1 s), not for the window of the request that used it: ``X-API-Window`` is not
part of the signed string, so a replayer could otherwise resend a captured request with a
longer window after a short-window nonce had been forgotten.
"""
from django.core.cache import cache

MAX_WINDOW_MS = 60_000
FUTURE_SKEW_MS = 1_000
_RETENTION_S = (MAX_WINDOW_MS + FUTURE_SKEW_MS) / 1000 + 1  # one spare second for clock jitter


def nonce_claim(key_id: str, nonce: str) -> bool:
    """Record the nonce; False when this key already used it inside the retention."""
    return cache.add(f"nonce:{key_id}:{nonce}", 1, timeout=_RETENTION_S)
