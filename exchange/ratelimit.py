"""Rate limits: named policies counted in the shared cache, and the IETF RateLimit headers.

Policies (``settings.BOURSE_RATE_LIMITS``, each ``"quota/window_seconds"``):

- ``key``: every verified request of one API key (its request budget);
- ``orders``: order submissions of one account, whatever key or transport sent them;
- ``ip``: requests without credentials, per source address;
- ``auth_failures``: failed authentications per source address; past it, that address
  gets 429 before its signatures are even checked.

Counting is django-ratelimit's core (fixed windows, each identity's window edge jittered
so that not every budget resets in the same second) over the default cache, which is Redis
in production and ``exchange.sqlitecache`` in the embedded mode: both shared by every
process and atomic on ``add``/``incr``.

The helpers here are transport-agnostic (REST, WebSocket and FIX all call ``consume``);
``record`` remembers a usage on an HTTP request and ``RateLimitHeadersMiddleware`` writes
``RateLimit-Policy`` and ``RateLimit`` on the way out, so every response the budget touched,
refusals included, carries them.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django_ratelimit.core import get_usage
from redis.exceptions import NoScriptError

from . import errors, metrics
from .clientip import client_ip
from .redisdirect import DirectRedis

log = logging.getLogger("bourse.ratelimit")

KEY, ORDERS, IP, AUTH_FAILURES = "key", "orders", "ip", "auth_failures"
# The policies an authenticated caller is subject to, announced on each of its responses.
AUTHENTICATED_POLICIES = (KEY, ORDERS)


@dataclass(frozen=True)
class Policy:
    name: str
    quota: int
    window: int  # seconds

    def header(self) -> str:
        return f'"{self.name}";q={self.quota};w={self.window}'


@dataclass(frozen=True)
class Usage:
    policy: Policy
    count: int
    reset: int  # seconds until the window ends

    @property
    def remaining(self) -> int:
        return max(0, self.policy.quota - self.count)

    @property
    def exceeded(self) -> bool:
        return self.count > self.policy.quota

    def header(self) -> str:
        return f'"{self.policy.name}";r={self.remaining};t={self.reset}'


def parse_rate(name: str, raw: str) -> Policy:
    try:
        quota, window = (int(part) for part in str(raw).split("/"))
    except ValueError:
        raise ValueError(f"rate limit {name}={raw!r}: expected QUOTA/WINDOW_SECONDS, e.g. 1200/60") from None
    if quota < 1 or window < 1:
        raise ValueError(f"rate limit {name}={raw!r}: quota and window must be positive")
    return Policy(name, quota, window)


def policy(name: str) -> Policy:
    return parse_rate(name, settings.BOURSE_RATE_LIMITS[name])


# With Redis, one round trip per count, whatever the number of budgets: each key counted by
# INCRBY and, for a new window's key, given its expiry, in turn, stopping at the first budget
# exceeded (the ones after it are not spent). ``BUDGETS_LUA`` is shared with the
# authentication gate's script (``apikeys.gate``), which counts the same way after its own
# checks: KEYS[k0..] against (quota, expiry) pairs in ARGV from a0, by ``by`` (0: a read).
# The keys and windows are django-ratelimit's (``_window_key``), so both ways of counting meet
# on the same keys; integers are stored raw by django-redis, so INCRBY and django-ratelimit's
# add/incr read each other's values.
BUDGETS_LUA = """
local function count_budgets(k0, a0, by, out)
  for i = k0, #KEYS do
    local j = a0 + (i - k0) * 2
    local count = redis.call('INCRBY', KEYS[i], by)
    if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ARGV[j + 1]) end
    out[#out + 1] = count
    if count > tonumber(ARGV[j]) then return false end
  end
  return true
end
"""
_COUNT = BUDGETS_LUA + """
local out = {}
count_budgets(1, 2, tonumber(ARGV[1]), out)
return out
"""
_EXPIRATION_FUDGE = 5  # seconds a window's key outlives it (django-ratelimit's)
# (pid, cache, Redis client): looked up once per process. Django's cache handler keeps its
# cache objects per context, and the REST pool runs each request in a fresh copy of the
# context, so ``caches["default"]`` built a new cache and client (and redis-py ``Script``,
# whose call re-checks its client's type) per request: over a quarter of a signed GET's CPU.
# The scripts themselves go through ``DirectRedis`` on the client's settings.
_store: tuple[int, Any, Any, DirectRedis] | None = None


def _lookup() -> tuple[int, Any, Any, DirectRedis]:
    global _store
    store = _store
    if store is None or store[0] != os.getpid():
        from django.core.cache import caches

        cache = caches["default"]
        client = cache.client.get_client(write=True)  # type: ignore[attr-defined]
        store = _store = (os.getpid(), cache, client, DirectRedis(client))
    return store


def redis_store() -> tuple[Any, Any]:
    """``(cache, client)``: the default cache (django-redis) and its Redis client, for this
    process (the client's connection pool is thread-safe)."""
    store = _lookup()
    return store[1], store[2]


def redis_direct() -> DirectRedis:
    """The store's commands on this thread's own connection (``exchange.redisdirect``): what
    the hot path's scripts run on."""
    return _lookup()[3]


def forget_store() -> None:
    """Look the store up again on next use (after a change to the cache settings)."""
    global _store
    _store = None


def run_script(redis: DirectRedis, source: str, keys: list[str], args: list[Any]) -> Any:
    """Run the Lua ``source`` by its SHA1 (EVALSHA), loading it when Redis does not know it
    (restarted or flushed)."""
    sha = _script_shas.get(source)
    if sha is None:
        sha = _script_shas[source] = hashlib.sha1(source.encode()).hexdigest()
    try:
        return redis.call("EVALSHA", sha, len(keys), *keys, *args)
    except NoScriptError:
        return redis.call("EVAL", source, len(keys), *keys, *args)


_script_shas: dict[str, str] = {}


def _window_key(group: str, pol: Policy, value: str) -> tuple[str, int]:
    """django-ratelimit's cache key and window end for ``value`` (fixed windows whose edges
    are jittered per identity by a CRC of it)."""
    now = int(time.time())
    if pol.window == 1:
        window = now
    else:
        window = now - (now % pol.window) + (zlib.crc32(value.encode()) % pol.window)
        if window < now:
            window += pol.window
    parts = f"{group}{pol.quota}/{pol.window}s{value}{window}"
    return "rl:" + hashlib.sha256(parts.encode()).hexdigest(), window


def budget_keys(cache: Any, budgets: Sequence[tuple[str, str | int]]) -> tuple[list[str], list[int], list[tuple[Policy, int]]]:
    """The Redis keys of ``budgets`` (``(policy, identity)`` pairs), their ``(quota, expiry)``
    script arguments and each one's ``(policy, window end)``, for ``BUDGETS_LUA``."""
    keys: list[str] = []
    args: list[int] = []
    windows: list[tuple[Policy, int]] = []
    for name, identity in budgets:
        pol = policy(name)
        key, window = _window_key(f"bourse:{name}", pol, str(identity))
        keys.append(cache.make_key(key))
        args += [pol.quota, pol.window + _EXPIRATION_FUDGE]
        windows.append((pol, window))
    return keys, args, windows


def usages(windows: Sequence[tuple[Policy, int]], counts: Sequence[Any]) -> list[Usage]:
    """The usages a budget script answered (as many as it counted: it stops at the first
    exceeded)."""
    now = int(time.time())
    return [Usage(pol, int(count), max(0, window - now)) for (pol, window), count in zip(windows, counts, strict=False)]


def _redis_counts(budgets: Sequence[tuple[str, str | int]], increment: bool = True) -> list[Usage]:
    _, cache, _, direct = _lookup()  # only called when _uses_redis_cache()
    keys, args, windows = budget_keys(cache, budgets)
    return usages(windows, run_script(direct, _COUNT, keys, [1 if increment else 0, *args]))


def _unreachable(exc: BaseException) -> errors.ServiceUnavailable:
    """The answer when the shared store cannot count: refuse rather than run unlimited."""
    log.error("rate-limit store unreachable: %s", exc.__class__.__name__)
    return errors.ServiceUnavailable("The rate-limit store is unreachable; retry shortly.")


def _uses_redis_cache() -> bool:
    return bool(settings.REDIS_URL) and settings.CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache"


def hit(name: str, identity: str | int, *, increment: bool = True) -> Usage:
    """Count one event of ``identity`` against policy ``name`` (or just read, with
    ``increment=False``) and return the usage; never raises for an exceeded budget."""
    if _uses_redis_cache():
        try:
            return _redis_counts([(name, identity)], increment)[0]
        except Exception as exc:
            raise _unreachable(exc) from exc
    pol = policy(name)
    try:
        usage = get_usage(
            None,  # the core only reads the request for method matching, which we do not use
            group=f"bourse:{name}",
            key=lambda group, request: str(identity),
            rate=(pol.quota, pol.window),
            increment=increment,
        )
    except Exception as exc:
        raise _unreachable(exc) from exc
    # django-ratelimit's answer when the cache refused the write is limit 0 (time_left -1 is
    # not a reliable sign: at a window's very edge a healthy answer can be -1 too).
    if usage["limit"] == 0:
        raise errors.ServiceUnavailable("The rate-limit store is unreachable; retry shortly.")
    return Usage(pol, usage["count"], max(0, usage["time_left"]))


def refusal(usage: Usage) -> errors.RateLimited:
    pol = usage.policy
    metrics.RATE_LIMIT_REFUSALS.labels(pol.name).inc()
    return errors.RateLimited(
        f"Rate limit {pol.name!r} allows {pol.quota} requests per {pol.window} s; retry in {max(1, usage.reset)} s.",
        retry_after=max(1, usage.reset),
        policy=pol.name,
    )


def consume(name: str, identity: str | int) -> Usage:
    """Count one event and raise ``RateLimited`` (429) when it is over the budget."""
    usage = hit(name, identity)
    if usage.exceeded:
        raise refusal(usage)
    return usage


def consume_all(budgets: Sequence[tuple[str, str | int]]) -> list[Usage]:
    """``consume`` each ``(policy, identity)`` in turn, stopping at the first one exceeded
    (raised; the budgets after it are not spent) — with Redis in ONE round trip (a FIX or
    WebSocket order counts the key's and the account's budgets, as REST's gate does)."""
    if len(budgets) < 2 or not _uses_redis_cache():
        return [consume(name, identity) for name, identity in budgets]
    try:
        counted = _redis_counts(budgets)
    except Exception as exc:
        raise _unreachable(exc) from exc
    if counted[-1].exceeded:
        raise refusal(counted[-1])
    return counted


# --- HTTP integration ---------------------------------------------------------------------


def _django_request(request):
    return getattr(request, "_request", request)  # a DRF Request wraps Django's


def record(request, usage: Usage, *, announce: tuple[str, ...] = ()) -> None:
    """Remember ``usage`` for the response headers (``announce``: policies to list in
    ``RateLimit-Policy`` even when this request did not count against them)."""
    req = _django_request(request)
    usages = req.__dict__.setdefault("_bourse_ratelimit_usages", {})
    usages[usage.policy.name] = usage
    announced = req.__dict__.setdefault("_bourse_ratelimit_policies", [])
    for name in (*announce, usage.policy.name):
        if name not in announced:
            announced.append(name)


def consume_for_request(request, name: str, identity: str | int, *, announce: tuple[str, ...] = ()) -> Usage:
    """``consume`` and ``record`` in one: the refusal carries the headers too."""
    usage = hit(name, identity)
    record(request, usage, announce=announce)
    if usage.exceeded:
        raise refusal(usage)
    return usage


def orders_rate_limit(view_method):
    """Decorator for an API view method that submits an order: counts it against the
    caller's account under the ``orders`` policy (429 past the budget).

        class OrderSubmitApi(PrivateApi):
            required_scope = "trade"

            @orders_rate_limit
            def post(self, request): ...
    """

    @functools.wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        usage = _django_request(request).__dict__.pop("_bourse_orders_precounted", None)
        if usage is None:
            consume_for_request(request, ORDERS, request.auth.account_id)
        else:  # counted with the authentication, in the same round trip (``apikeys.gate``)
            record(request, usage)
            if usage.exceeded:
                raise refusal(usage)
        return view_method(self, request, *args, **kwargs)

    wrapper.counts_orders = True  # type: ignore[attr-defined]
    return wrapper


def precounted(request, usage: Usage) -> None:
    """An ``orders`` usage already counted for this request, for ``orders_rate_limit``."""
    _django_request(request).__dict__["_bourse_orders_precounted"] = usage


def order_submission_consume(account_id: int) -> Usage:
    """The same ``orders`` budget for transports without HTTP requests (WebSocket, FIX)."""
    return consume(ORDERS, account_id)


def ip_identity(address: str | None) -> str:
    """What a per-address budget counts: an IPv4 address as is, an IPv6 address as its
    ``/BOURSE_RATE_LIMIT_IPV6_PREFIX`` network (default /64: one customer's allocation, whose
    2^64 addresses would otherwise each get a budget of their own). IPv4-mapped IPv6 counts
    as the IPv4 address."""
    import ipaddress

    from django.conf import settings

    text = (address or "").strip().strip("[]")
    try:
        parsed = ipaddress.ip_address(text)
    except ValueError:
        return text
    if parsed.version == 6 and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    if parsed.version == 4:
        return str(parsed)
    prefix = int(getattr(settings, "BOURSE_RATE_LIMIT_IPV6_PREFIX", 64))
    return str(ipaddress.ip_network(f"{parsed}/{prefix}", strict=False))


class AnonymousRateThrottle:
    """DRF throttle (the project default): requests without credentials count against their
    source address under the ``ip`` policy. Authenticated requests were already counted
    against their key by the authentication class."""

    def allow_request(self, request, view) -> bool:
        if request.auth is not None:
            return True
        consume_for_request(request, IP, ip_identity(client_ip(request)))
        return True

    def wait(self):  # pragma: no cover - allow_request raises instead of returning False
        return None


class RateLimitHeadersMiddleware:
    """Writes ``RateLimit-Policy`` and ``RateLimit`` for whatever budgets the request touched."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        usages = request.__dict__.get("_bourse_ratelimit_usages")
        if usages:
            names = request.__dict__.get("_bourse_ratelimit_policies") or list(usages)
            response["RateLimit-Policy"] = ", ".join(policy(name).header() for name in names)
            response["RateLimit"] = ", ".join(usage.header() for usage in usages.values())
        return response
