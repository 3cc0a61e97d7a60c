"""``apikeys.gate``: the shared-store half of authentication in one round trip keeps the
verifier's order of decisions — the failure budget first (a throttled address claims no
nonce), the nonce claimed whatever follows, failures counted for a late, reused or
pre-epoch request, and the budgets counted in order only on acceptance, stopping at the
first one exceeded. Both implementations: the Lua script (PostgreSQL + Redis configuration)
and the step-by-step one (the embedded cache, or forced here)."""
import time

import pytest
from django.core.cache import cache

from apikeys import gate, replay
from exchange import ratelimit

IP = "203.0.113.9"


@pytest.fixture(params=["store", "stepwise"])
def run(request, settings, monkeypatch):
    settings.BOURSE_RATE_LIMITS = {**settings.BOURSE_RATE_LIMITS, "key": "2/60", "orders": "5/60",
                                   "auth_failures": "3/60"}
    if request.param == "stepwise":
        monkeypatch.setattr(ratelimit, "_uses_redis_cache", lambda: False)
    now = int(time.time() * 1000)

    def call(nonce="n" * 16, **kwargs):
        kwargs = {"source_ip": IP, "mode": "claim", "key_id": "bk_gate", "nonce": nonce, "verdict": "accept",
                  "timestamp_ms": now, "now_ms": now, **kwargs}
        return gate.run(**kwargs)

    return call


BUDGETS = (("key", "bk_gate"), ("orders", "42"))


def failures() -> int:
    return ratelimit.hit(ratelimit.AUTH_FAILURES, IP, increment=False).count


def test_accepted_counts_each_budget_in_order(run):
    first = run(nonce="a" * 16, budgets=BUDGETS)
    second = run(nonce="b" * 16, budgets=BUDGETS)
    assert (first.outcome, [u.count for u in first.usages]) == (gate.ACCEPTED, [1, 1])
    assert (second.outcome, [u.count for u in second.usages]) == (gate.ACCEPTED, [2, 2])
    assert [u.policy.name for u in second.usages] == ["key", "orders"] and failures() == 0


def test_past_the_key_budget_the_orders_budget_is_not_spent(run):
    for nonce in ("a" * 16, "b" * 16):
        assert run(nonce=nonce, budgets=BUDGETS).outcome == gate.ACCEPTED
    over = run(nonce="c" * 16, budgets=BUDGETS)
    assert over.outcome == gate.OVER_BUDGET and [u.count for u in over.usages] == [3]
    assert over.usages[0].exceeded
    assert ratelimit.hit("orders", "42", increment=False).count == 2


def test_a_reused_nonce_counts_a_failure_and_no_budget(run):
    run(budgets=BUDGETS)
    again = run(budgets=BUDGETS)
    assert again.outcome == gate.NONCE_REUSED and again.usages == [] and failures() == 1
    assert ratelimit.hit("key", "bk_gate", increment=False).count == 1


def test_late_and_refused_verdicts_claim_the_nonce(run):
    assert run(nonce="l" * 16, verdict="late").outcome == gate.REFUSED
    assert failures() == 1  # a late request is a failed authentication
    assert run(nonce="r" * 16, verdict="refused").outcome == gate.REFUSED
    assert failures() == 1  # a standing refusal (revoked key, address) is not
    for nonce in ("l" * 16, "r" * 16):  # both nonces are spent: neither can come back
        assert run(nonce=nonce).outcome == gate.NONCE_REUSED


def test_a_request_signed_before_the_store_epoch_is_refused(run):
    now = int(time.time() * 1000)
    cache.set(replay.EPOCH_KEY, now + 60_000, timeout=None)  # the store started remembering after it was signed
    assert run(budgets=BUDGETS).outcome == gate.REPLAY_RESET and failures() == 1


def test_an_epoch_is_started_when_missing(run):
    cache.delete(replay.EPOCH_KEY)  # what a restart without persistence leaves
    now = int(time.time() * 1000)
    assert run(timestamp_ms=now - 1000, now_ms=now).outcome == gate.REPLAY_RESET
    assert int(cache.get(replay.EPOCH_KEY)) == now
    assert run(nonce="f" * 16, timestamp_ms=now + 5, now_ms=now + 10).outcome == gate.ACCEPTED


def test_a_throttled_address_claims_nothing(run, settings):
    for _ in range(3):
        assert run(mode="fail").outcome == gate.REFUSED
    throttled = run(nonce="t" * 16, budgets=BUDGETS)
    assert throttled.outcome == gate.THROTTLED and throttled.failures.count == 3
    assert run(mode="check").outcome == gate.THROTTLED
    assert failures() == 3  # not counted further
    settings.BOURSE_RATE_LIMITS = {**settings.BOURSE_RATE_LIMITS, "auth_failures": "100/60"}
    assert run(nonce="t" * 16).outcome == gate.ACCEPTED  # its nonce was never claimed


def test_without_a_source_address_nothing_is_throttled(run):
    assert run(source_ip=None, mode="fail").failures is None
    assert run(source_ip=None, budgets=BUDGETS).outcome == gate.ACCEPTED
