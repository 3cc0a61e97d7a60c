"""The shared-store half of authenticating one signed request, in one round trip.

The verifier decides everything it can from the process's memory first (the key from
``keycache``, the signature, the time window, the key's standing, the scope); what needs the
shared store — the source address's failure budget, the nonce, the replay store's epoch, the
key's request budget and, for an order submission, the account's ``orders`` budget — is then
decided by ONE call: a Lua script on Redis (atomic, one round trip), or the same steps one by
one on the embedded mode's SQLite cache (``exchange.sqlitecache``, in-process, no network).

The script keeps the verifier's order exactly (``apikeys.verifier`` lists it):

1. the failure budget: at or past its quota the request is ``throttled`` and nothing else is
   touched (its nonce stays unclaimed, nothing is counted);
2. ``fail`` mode (a refusal found before the nonce: malformed, unknown key, wrong
   signature): one failure is counted; ``check`` mode (missing credentials): nothing;
3. ``claim`` mode (the signature verified): the nonce is claimed (``SET NX PX``) whatever
   follows; then the verdict found in memory: ``late`` (timestamp outside the window: a
   failure is counted), ``refused`` (revoked, expired, owner off, address not allowed:
   nothing counted), or ``accept``, when a reused nonce and a request signed before the
   store's epoch (which the first claim to find it missing starts) are refused and counted
   as failures, and only then each budget is counted in turn (``INCRBY`` with its window's
   expiry), stopping at the first one exceeded — so a request refused by the key budget
   does not spend the orders budget, as before.

Keys and windows are ``exchange.ratelimit``'s (``_window_key``) and ``apikeys.replay``'s, so
the counts meet those of every other caller (WebSocket, FIX, ``ratelimit.hit``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from exchange import errors, ratelimit

from . import replay

log = logging.getLogger("bourse.auth")

# outcomes
THROTTLED, REFUSED, NONCE_REUSED, REPLAY_RESET, OVER_BUDGET, ACCEPTED = (
    "throttled", "refused", "nonce_reused", "replay_reset", "over_budget", "accepted")

_SCRIPT = ratelimit.BUDGETS_LUA + """
local fkey = KEYS[1]
local mode = ARGV[3]
local failures = 0
if fkey ~= '' then
  failures = tonumber(redis.call('GET', fkey) or '0')
  if failures >= tonumber(ARGV[1]) then return {'throttled', failures} end
end
local function fail()
  if fkey ~= '' then
    failures = redis.call('INCRBY', fkey, 1)
    if redis.call('TTL', fkey) < 0 then redis.call('EXPIRE', fkey, ARGV[2]) end
  end
end
if mode == 'check' then return {'refused', failures} end
if mode == 'fail' then fail() return {'refused', failures} end
local fresh = redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[4])
local verdict = ARGV[5]
if verdict == 'late' then fail() return {'refused', failures} end
if verdict == 'refused' then return {'refused', failures} end
if not fresh then fail() return {'nonce_reused', failures} end
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  redis.call('SET', KEYS[3], ARGV[7], 'NX')
  epoch = redis.call('GET', KEYS[3]) or ARGV[7]
end
if tonumber(ARGV[6]) < tonumber(epoch) then fail() return {'replay_reset', failures} end
local out = {'accepted', failures}
if not count_budgets(4, 8, 1, out) then out[1] = 'over_budget' end
return out
"""



@dataclass
class Outcome:
    outcome: str
    failures: ratelimit.Usage | None  # the source address's failure budget, when it has one
    usages: list[ratelimit.Usage] = field(default_factory=list)  # the budgets counted, in order


def _failure_identity(source_ip: str | None) -> str | None:
    return ratelimit.ip_identity(source_ip) if source_ip else None


def run(
    *,
    source_ip: str | None,
    mode: str,
    key_id: str = "",
    nonce: str = "",
    verdict: str = "accept",
    timestamp_ms: int = 0,
    now_ms: int = 0,
    budgets: tuple[tuple[str, str], ...] = (),
) -> Outcome:
    """One authentication's shared-store work (module docstring). ``mode`` is ``check``,
    ``fail`` or ``claim``; ``verdict`` (claim only) ``accept``, ``late`` or ``refused``;
    ``budgets`` the (policy, identity) pairs to count on acceptance, in order. A store that
    cannot be reached is 503 ``service_unavailable`` (never an unlimited pass)."""
    try:
        if ratelimit._uses_redis_cache():
            return _redis(source_ip, mode, key_id, nonce, verdict, timestamp_ms, now_ms, budgets)
        return _stepwise(source_ip, mode, key_id, nonce, verdict, timestamp_ms, now_ms, budgets)
    except errors.BourseError:
        raise
    except Exception as exc:
        log.error("authentication store unreachable: %s", exc.__class__.__name__)
        raise errors.ServiceUnavailable("The rate-limit store is unreachable; retry shortly.") from exc


def _redis(source_ip, mode, key_id, nonce, verdict, timestamp_ms, now_ms, budgets) -> Outcome:
    cache, _ = ratelimit.redis_store()
    fail_pol = ratelimit.policy(ratelimit.AUTH_FAILURES)
    identity = _failure_identity(source_ip)
    fail_key, fail_end = ("", 0)
    if identity is not None:
        raw, fail_end = ratelimit._window_key(f"bourse:{ratelimit.AUTH_FAILURES}", fail_pol, identity)
        fail_key = cache.make_key(raw)
    keys = [fail_key, cache.make_key(replay.nonce_key(key_id, nonce)) if nonce else "", cache.make_key(replay.EPOCH_KEY)]
    args: list[Any] = [fail_pol.quota, fail_pol.window + ratelimit._EXPIRATION_FUDGE, mode,
                       int(replay.nonce_ttl_s(timestamp_ms, now_ms) * 1000), verdict, timestamp_ms, now_ms]
    budget_keys, budget_args, windows = ratelimit.budget_keys(cache, budgets)
    answer = ratelimit.run_script(ratelimit.redis_direct(), _SCRIPT, keys + budget_keys, args + budget_args)
    outcome = answer[0].decode() if isinstance(answer[0], bytes) else str(answer[0])
    failures = ratelimit.usages([(fail_pol, fail_end)], [answer[1]])[0] if identity is not None else None
    return Outcome(outcome, failures, ratelimit.usages(windows, answer[2:]))


def _stepwise(source_ip, mode, key_id, nonce, verdict, timestamp_ms, now_ms, budgets) -> Outcome:
    """The same decisions on a cache without scripts (the embedded mode), one step at a time."""
    identity = _failure_identity(source_ip)
    failures = None
    if identity is not None:
        failures = ratelimit.hit(ratelimit.AUTH_FAILURES, identity, increment=False)
        if failures.count >= failures.policy.quota:
            return Outcome(THROTTLED, failures)

    def fail(outcome: str) -> Outcome:
        counted = failures
        if identity is not None:
            counted = ratelimit.hit(ratelimit.AUTH_FAILURES, identity)
        return Outcome(outcome, counted)

    if mode == "check":
        return Outcome(REFUSED, failures)
    if mode == "fail":
        return fail(REFUSED)
    fresh = replay.nonce_claim(key_id, nonce, timestamp_ms=timestamp_ms, now_ms=now_ms)
    if verdict == "late":
        return fail(REFUSED)
    if verdict == "refused":
        return Outcome(REFUSED, failures)
    if not fresh:
        return fail(NONCE_REUSED)
    if timestamp_ms < replay.store_epoch_ms(now_ms):
        return fail(REPLAY_RESET)
    usages = []
    for name, budget_identity in budgets:
        usage = ratelimit.hit(name, budget_identity)
        usages.append(usage)
        if usage.exceeded:
            return Outcome(OVER_BUDGET, failures, usages)
    return Outcome(ACCEPTED, failures, usages)
