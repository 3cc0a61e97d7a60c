"""POST /orders/batch and POST /cancel-after (the dead-man switch), through signed requests;
the engine stepped by hand, the dead-man switch fired by hand (``deadman_fire_due``) except
in tests/trading/test_deadman_restarts.py, which runs the real processes."""
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Journal
from audit.models import AuditEvent
from tests.factories import AccountFactory, ApiKeyFactory
from tests.signed import SignedClient
from tests.support import fund
from trading.models import Command, DeadManSwitch, Order
from trading.services import deadman_fire_due

pytestmark = pytest.mark.django_db

LIMIT = {"market": "BTC-USD", "side": "buy", "type": "limit", "price": "100.00", "quantity": "0.5000"}


@pytest.fixture(autouse=True)
def no_wait(settings):
    settings.BOURSE_ENGINE_WAIT_S = 0


@pytest.fixture
def alice(market):
    account = AccountFactory(name="alice")
    fund(account, USD="10000", BTC="10")
    return SignedClient(ApiKeyFactory(account=account))


def _batch(client, orders):
    return client.post("/api/v1/orders/batch", json={"orders": orders})


# --- batch ----------------------------------------------------------------------------------
def test_batch_items_are_independent_and_answered_like_post_orders(runner, alice):
    journals = Journal.objects.count()
    response = _batch(alice, [
        {**LIMIT, "client_order_id": "b-1"},
        {**LIMIT, "price": "100.001", "client_order_id": "b-2"},  # off the tick: refused alone
        {**LIMIT, "quantity": "500.0000"},  # more than alice holds
        {**LIMIT, "side": "sell", "price": "101.00", "client_order_id": "b-4"},
        {**LIMIT, "client_order_id": "b-1"},  # the first again: idempotent, 200
        "not an object",
    ])
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == [202, 400, 422, 202, 200, 400]
    assert results[0]["order"]["client_order_id"] == "b-1" and results[0]["order"]["status"] == "pending"
    assert results[4]["order"]["order_id"] == results[0]["order"]["order_id"]
    assert results[3]["order"]["side"] == "sell"
    # The refusals are the problems POST /orders gives, member for member.
    alone = alice.post("/api/v1/orders", json={**LIMIT, "price": "100.001", "client_order_id": "b-2"}).json()
    assert {k: v for k, v in results[1]["error"].items() if k != "request_id"} == {
        k: v for k, v in alone.items() if k != "request_id"}
    assert [(e["field"], e["code"]) for e in results[1]["error"]["errors"]] == [("price", "tick_size")]
    assert results[2]["error"]["code"] == "insufficient_balance" and results[2]["error"]["status"] == 422
    assert results[5]["error"]["code"] == "validation_error"
    # Only the two accepted orders exist, each with its hold (one journal each).
    assert sorted(Order.objects.values_list("client_order_id", flat=True)) == ["b-1", "b-4"]
    assert Journal.objects.count() == journals + 2
    runner.step()
    assert set(Order.objects.values_list("status", flat=True)) == {"open"}


def test_batch_answers_the_engine_verdicts_when_it_waits(runner, alice, settings, monkeypatch):
    """The verdicts are awaited together, within one BOURSE_ENGINE_WAIT_S (201: as the engine left it)."""
    import trading.services as services

    settings.BOURSE_ENGINE_WAIT_S = 0.5
    timeouts = []
    real_wait = services.order_wait

    def wait_while_the_engine_runs(order, timeout, *args, **kwargs):
        timeouts.append(timeout)
        runner.step()
        return real_wait(order, timeout, *args, **kwargs)

    monkeypatch.setattr(services, "order_wait", wait_while_the_engine_runs)
    results = _batch(alice, [LIMIT, {**LIMIT, "price": "99.00"}]).json()["results"]
    assert [(r["status"], r["order"]["status"]) for r in results] == [(201, "open"), (201, "open")]
    assert len(timeouts) == 2 and all(0 <= t <= 0.5 for t in timeouts)


def test_each_batch_item_counts_against_the_orders_budget(runner, alice, settings):
    settings.BOURSE_RATE_LIMITS = {**settings.BOURSE_RATE_LIMITS, "orders": "3/86400"}
    response = _batch(alice, [{**LIMIT, "client_order_id": f"r-{i}"} for i in range(5)])
    results = response.json()["results"]
    assert [r["status"] for r in results] == [202, 202, 202, 429, 429]
    assert results[3]["error"]["code"] == "rate_limited" and results[3]["error"]["policy"] == "orders"
    assert Order.objects.count() == 3
    assert '"orders";r=0' in response.headers["RateLimit"]
    # The budget is the one POST /orders counts against.
    assert alice.post("/api/v1/orders", json=LIMIT).status_code == 429


@pytest.mark.parametrize("body, code", [
    ({}, "required"),
    ([LIMIT], "required"),
    ({"orders": LIMIT}, "not_a_list"),
    ({"orders": []}, "empty"),
    ({"orders": [LIMIT] * 21}, "too_many"),
    ({"orders": [LIMIT], "atomic": True}, "unknown_field"),
])
def test_a_bad_envelope_is_refused_whole(runner, alice, body, code):
    response = alice.post("/api/v1/orders/batch", json=body)
    assert response.status_code == 400, response.content
    problem = response.json()
    assert problem["code"] == "validation_error" and problem["errors"][0]["code"] == code
    assert not Order.objects.exists()


def test_batch_needs_the_trade_scope(runner, market):
    reader = SignedClient(ApiKeyFactory(scopes=["read"]))
    response = _batch(reader, [LIMIT])
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    response = reader.post("/api/v1/cancel-after", json={"timeout_ms": 5000})
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    assert not DeadManSwitch.objects.exists()


# --- cancel-after ---------------------------------------------------------------------------
@pytest.mark.parametrize("body, code", [
    ({"timeout_ms": 999}, "out_of_range"),
    ({"timeout_ms": 600001}, "out_of_range"),
    ({"timeout_ms": -1}, "out_of_range"),
    ({"timeout_ms": "5000"}, "invalid_type"),
    ({"timeout_ms": 5000.0}, "invalid_type"),
    ({"timeout_ms": True}, "invalid_type"),
    ({}, "required"),
    ({"timeout_ms": 5000, "market": "BTC-USD"}, "unknown_field"),
])
def test_cancel_after_refuses_bad_timeouts(alice, body, code):
    response = alice.post("/api/v1/cancel-after", json=body)
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["code"] == code
    assert not DeadManSwitch.objects.exists()


def test_cancel_after_arms_rearms_and_disarms(alice):
    armed = alice.post("/api/v1/cancel-after", json={"timeout_ms": 5000}).json()
    now, trigger = (timezone.datetime.fromisoformat(armed[k]) for k in ("current_time", "trigger_time"))
    assert trigger - now == timedelta(milliseconds=5000)
    again = alice.post("/api/v1/cancel-after", json={"timeout_ms": 60000}).json()
    assert again["trigger_time"] > armed["trigger_time"]
    assert DeadManSwitch.objects.get().timeout_ms == 60000
    disarmed = alice.post("/api/v1/cancel-after", json={"timeout_ms": 0}).json()
    assert disarmed["trigger_time"] is None and disarmed["current_time"] >= again["current_time"]
    # Only the changes of state are audited, not the heartbeat.
    actions = list(AuditEvent.objects.filter(action__startswith="deadman.").order_by("id").values_list("action", flat=True))
    assert actions == ["deadman.armed", "deadman.disarmed"]
    assert deadman_fire_due(timezone.now() + timedelta(hours=1)) == []


def test_a_switch_not_rearmed_cancels_the_accounts_orders_placed_before_it_fired(runner, alice, market):
    key = alice.key
    other = SignedClient(ApiKeyFactory(account=AccountFactory()))
    fund(other.key.account, USD="10000")
    kept_elsewhere = other.post("/api/v1/orders", json=LIMIT).json()["order_id"]
    first = alice.post("/api/v1/orders", json=LIMIT).json()["order_id"]
    runner.step()
    pending = alice.post("/api/v1/orders", json={**LIMIT, "price": "99.00"}).json()["order_id"]  # not yet matched
    armed = alice.post("/api/v1/cancel-after", json={"timeout_ms": 1000}).json()
    trigger = timezone.datetime.fromisoformat(armed["trigger_time"])
    assert deadman_fire_due(trigger - timedelta(milliseconds=1)) == []  # not yet due
    fired = deadman_fire_due(trigger + timedelta(milliseconds=1))
    assert fired == [(key.pk, [int(first), int(pending)])]
    assert deadman_fire_due(trigger + timedelta(seconds=5)) == []  # once
    runner.step()
    for order_id in (first, pending):
        order = alice.get(f"/api/v1/orders/{order_id}").json()
        assert (order["status"], order["cancel_reason"]) == ("cancelled", "dead_man")
    assert other.get(f"/api/v1/orders/{kept_elsewhere}").json()["status"] == "open"
    switch = DeadManSwitch.objects.get(pk=key.pk)
    assert switch.trigger_at is None and switch.fired_at is not None
    fired_event = AuditEvent.objects.get(action="deadman.fired")
    assert fired_event.after["orders"] == [first, pending]
    assert Command.objects.filter(kind="cancel", reason="dead_man").count() == 2


def test_an_order_placed_after_the_trigger_time_is_not_cancelled_by_it(runner, alice):
    armed = alice.post("/api/v1/cancel-after", json={"timeout_ms": 1000}).json()
    trigger = timezone.datetime.fromisoformat(armed["trigger_time"])
    before = alice.post("/api/v1/orders", json=LIMIT).json()["order_id"]
    Order.objects.filter(pk=before).update(created_at=trigger)  # placed at the very trigger time
    late = alice.post("/api/v1/orders", json={**LIMIT, "price": "99.00"}).json()["order_id"]
    Order.objects.filter(pk=late).update(created_at=trigger + timedelta(milliseconds=1))
    fired = deadman_fire_due(trigger + timedelta(seconds=1))
    assert fired == [(alice.key.pk, [int(before)])]


def test_rearming_before_the_trigger_time_keeps_the_orders(runner, alice):
    order_id = alice.post("/api/v1/orders", json=LIMIT).json()["order_id"]
    runner.step()
    first = alice.post("/api/v1/cancel-after", json={"timeout_ms": 1000}).json()
    alice.post("/api/v1/cancel-after", json={"timeout_ms": 10000})
    assert deadman_fire_due(timezone.datetime.fromisoformat(first["trigger_time"]) + timedelta(seconds=1)) == []
    runner.step()
    assert alice.get(f"/api/v1/orders/{order_id}").json()["status"] == "open"


def test_the_switch_is_per_key(runner, alice):
    second_key = SignedClient(ApiKeyFactory(account=alice.key.account))
    order_id = alice.post("/api/v1/orders", json=LIMIT).json()["order_id"]
    alice.post("/api/v1/cancel-after", json={"timeout_ms": 1000})
    armed = second_key.post("/api/v1/cancel-after", json={"timeout_ms": 600000}).json()
    second_key.post("/api/v1/cancel-after", json={"timeout_ms": 0})  # disarms its own only
    assert armed["trigger_time"] is not None
    fired = deadman_fire_due(timezone.now() + timedelta(seconds=2))
    assert fired == [(alice.key.pk, [int(order_id)])]  # the account's orders, whichever key placed them
