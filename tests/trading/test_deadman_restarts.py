"""The dead-man switch survives restarts (real processes): armed, then the engine is SIGKILLed
and the trigger time passes while no engine runs — the next engine fires it first; armed
through one daphne that is then stopped — the engine fires it with no web process of that
generation left, and a new daphne shows the outcome."""
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import ApiKeyFactory, AssetFactory, MarketFactory
from tests.support import daphne_server, fund
from trading.models import DeadManSwitch, Order
from trading.services import deadman_arm, order_submit

from .transports import Rest, start_engine, stop, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def key():
    usd, btc = AssetFactory(code="USD", scale=6), AssetFactory(code="BTC", scale=8)
    MarketFactory(base=btc, quote=usd)
    key = ApiKeyFactory()
    fund(key.account, USD="100000", BTC="100")
    return key


def _order(pk) -> Order:
    return Order.objects.get(pk=pk)


def test_a_deadline_that_passed_while_the_engine_was_down_fires_when_it_starts(key):
    engine = start_engine()
    try:
        order = order_submit(account=key.account, market="BTC-USD", side="buy", type="limit", price="100.00",
                             quantity="1.0000", wait=15).order
        assert order.status == "open", stop(engine)
        state = deadman_arm(key=key, timeout_ms=1000)
    finally:
        stop(engine, kill=True)  # SIGKILL: nothing of the engine survives but the database
    time.sleep(max(0.0, (state.trigger_time - timezone.now()).total_seconds()) + 1.0)
    # The trigger time passed with no engine: nothing fired yet, the switch is still armed.
    assert _order(order.pk).status == "open"
    assert DeadManSwitch.objects.get(pk=key.pk).trigger_at == state.trigger_time
    engine = start_engine()
    try:
        assert wait_for(lambda: _order(order.pk).status == "cancelled"), stop(engine)
    finally:
        output = stop(engine)
    assert _order(order.pk).cancel_reason == "dead_man", output
    switch = DeadManSwitch.objects.get(pk=key.pk)
    assert switch.trigger_at is None and switch.fired_at >= state.trigger_time


def test_a_switch_armed_through_a_web_process_that_is_gone_still_fires(key):
    engine = start_engine()
    try:
        with daphne_server() as first:
            rest = Rest(first.http, key)
            status, placed = rest.post("/orders", {"market": "BTC-USD", "side": "buy", "type": "limit",
                                                   "price": "100.00", "quantity": "1.0000"})
            assert (status, placed["status"]) == (201, "open"), placed
            status, armed = rest.post("/cancel-after", {"timeout_ms": 4000})
            assert status == 200 and armed["trigger_time"], armed
        # The web process that armed it is gone; a new one serves the same state.
        trigger = timezone.datetime.fromisoformat(armed["trigger_time"])
        with daphne_server() as second:
            rest = Rest(second.http, key)
            if timezone.now() < trigger - timedelta(milliseconds=300):
                assert rest.get(f"/orders/{placed['order_id']}")[1]["status"] == "open"
            assert wait_for(lambda: rest.get(f"/orders/{placed['order_id']}")[1]["status"] == "cancelled", timeout=30)
            order = rest.get(f"/orders/{placed['order_id']}")[1]
            assert order["cancel_reason"] == "dead_man"
            assert order["updated_at"] >= armed["trigger_time"]  # not before its time
            # and the switch is disarmed: arming it again starts afresh
            status, again = rest.post("/cancel-after", {"timeout_ms": 0})
            assert (status, again["trigger_time"]) == (200, None)
    finally:
        stop(engine)
