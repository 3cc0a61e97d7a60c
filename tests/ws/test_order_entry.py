"""Order entry over /ws/v1 (Channels' communicator; the engine stepped by hand, nobody waits
for it: BOURSE_ENGINE_WAIT_S=0). The live daphne version of these is the cross-transport
scenario (tests/trading/test_cross_transport.py)."""
from decimal import Decimal as D

import pytest

from audit.models import AuditEvent
from tests.factories import ApiKeyFactory
from tests.support import fund
from tests.ws.helpers import auth_op, connected, db, scenario
from trading.models import DeadManSwitch, Order

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = {"market": "BTC-USD", "side": "buy", "type": "limit", "price": "100.00", "quantity": "0.5000"}


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.BOURSE_ENGINE_WAIT_S = 0
    settings.BOURSE_WS_ORDER_THREADS = 0  # on the test's thread (its database connection)


@pytest.fixture
def trader_key(market):
    key = ApiKeyFactory()
    fund(key.account, USD="10000", BTC="10")
    return key


async def authed(ws, key, **extra):
    reply = await ws.ask(auth_op(key, message_id="a", **extra))
    assert reply["type"] == "auth", reply


@scenario
async def test_place_cancel_and_cancel_all(runner, trader_key):
    async with connected() as ws:
        await authed(ws, trader_key)
        placed = await ws.ask({"op": "place_order", "id": 1, **LIMIT, "client_order_id": "w-1"})
        assert placed["type"] == "order" and placed["id"] == 1
        assert (placed["order"]["status"], placed["order"]["client_order_id"]) == ("pending", "w-1")
        again = await ws.ask({"op": "place_order", "id": 2, **LIMIT, "client_order_id": "w-1"})
        assert again["order"]["order_id"] == placed["order"]["order_id"]  # idempotent, as REST's 200
        await db(runner.step)()
        cancel = await ws.ask({"op": "cancel_order", "id": 3, "client_order_id": "w-1"})
        assert cancel["type"] == "order" and cancel["order"]["order_id"] == placed["order"]["order_id"]
        await db(runner.step)()
        order = await db(Order.objects.get)(pk=int(placed["order"]["order_id"]))
        assert (order.status, order.cancel_reason) == ("cancelled", "user")
        closed = await ws.ask({"op": "cancel_order", "id": 4, "order_id": placed["order"]["order_id"]})
        assert (closed["type"], closed["code"], closed["id"]) == ("error", "order_closed", 4)

        second = await ws.ask({"op": "place_order", "id": 5, **LIMIT})
        third = await ws.ask({"op": "place_order", "id": 6, **LIMIT, "market": "BTC-USD", "price": "99.00"})
        await db(runner.step)()
        cancelled = await ws.ask({"op": "cancel_all", "id": 7, "market": "BTC-USD"})
        assert cancelled == {"type": "cancel_all", "id": 7,
                             "cancelled": [second["order"]["order_id"], third["order"]["order_id"]]}
        await db(runner.step)()
        assert await db(lambda: Order.objects.filter(status="cancelled").count())() == 3


@pytest.mark.parametrize("message, code, fields", [
    ({**LIMIT, "price": "100.001"}, "validation_error", [("price", "tick_size")]),
    ({**LIMIT, "price": 100}, "validation_error", [("price", "not_a_string")]),
    ({**LIMIT, "leverage": "10"}, "validation_error", [("leverage", "unknown_field")]),
    ({**LIMIT, "quantity": "500.0000"}, "insufficient_balance", []),
    ({**LIMIT, "market": "ETH-USD"}, "market_not_found", []),
])
@scenario
async def test_place_order_refusals_carry_the_rest_codes(runner, trader_key, message, code, fields):
    async with connected() as ws:
        await authed(ws, trader_key)
        reply = await ws.ask({"op": "place_order", "id": "p", **message})
        assert (reply["type"], reply["code"], reply["id"]) == ("error", code, "p"), reply
        assert [(e["field"], e["code"]) for e in reply.get("errors", [])] == fields
        assert await ws.ask({"op": "ping", "id": "alive"}) == {"type": "pong", "id": "alive"}
    assert not await db(Order.objects.exists)()


@pytest.mark.parametrize("message, code", [
    ({"op": "cancel_order", "order_id": "999999"}, "not_found"),
    ({"op": "cancel_order", "client_order_id": "nobody"}, "not_found"),
    ({"op": "cancel_order"}, "validation_error"),
    ({"op": "cancel_order", "order_id": "1", "client_order_id": "x"}, "validation_error"),
    ({"op": "cancel_order", "order_id": 1}, "validation_error"),
    ({"op": "cancel_all", "market": "NOPE-USD"}, "market_not_found"),
    ({"op": "cancel_all", "markets": ["BTC-USD"]}, "validation_error"),
    ({"op": "cancel_after", "timeout_ms": 10}, "validation_error"),
    ({"op": "cancel_after"}, "validation_error"),
])
@scenario
async def test_other_refusals(runner, trader_key, message, code):
    async with connected() as ws:
        await authed(ws, trader_key)
        reply = await ws.ask({**message, "id": "x"})
        assert (reply["type"], reply["code"]) == ("error", code), reply


@scenario
async def test_order_ops_need_auth_and_the_trade_scope(runner, market):
    reader = await db(ApiKeyFactory)(scopes=["read"])
    async with connected() as ws:
        refused = await ws.ask({"op": "place_order", "id": 1, **LIMIT})
        assert (refused["type"], refused["code"]) == ("error", "not_authenticated")
        await authed(ws, reader)
        for op in ({"op": "place_order", **LIMIT}, {"op": "cancel_all"}, {"op": "cancel_after", "timeout_ms": 5000}):
            reply = await ws.ask({**op, "id": 2})
            assert (reply["code"], reply["required_scope"]) == ("permission_denied", "trade"), reply
    async with connected() as ws:
        reply = await ws.ask(auth_op(reader, message_id="c", cancel_on_disconnect=True))
        assert (reply["type"], reply["code"]) == ("error", "permission_denied")
        bad = await ws.ask(auth_op(reader, message_id="d", cancel_on_disconnect="yes"))
        assert (bad["code"], bad["errors"][0]["field"]) == ("validation_error", "cancel_on_disconnect")
    assert not await db(Order.objects.exists)()
    assert await db(lambda: AuditEvent.objects.filter(action="auth.failed", reason="permission_denied").count())() == 4


@scenario
async def test_place_order_counts_against_the_orders_budget(runner, trader_key, settings):
    settings.BOURSE_RATE_LIMITS = {**settings.BOURSE_RATE_LIMITS, "orders": "2/86400"}
    async with connected() as ws:
        await authed(ws, trader_key)
        replies = [await ws.ask({"op": "place_order", "id": i, **LIMIT}) for i in range(3)]
        assert [r["type"] for r in replies] == ["order", "order", "error"]
        assert (replies[2]["code"], replies[2]["policy"]) == ("rate_limited", "orders")
        # A cancel is no order placement: not refused by that budget.
        assert (await ws.ask({"op": "cancel_all", "id": "c"}))["type"] == "cancel_all"


@scenario
async def test_cancel_after_arms_the_keys_switch(runner, trader_key):
    async with connected() as ws:
        await authed(ws, trader_key)
        armed = await ws.ask({"op": "cancel_after", "id": "d", "timeout_ms": 5000})
        assert armed["type"] == "cancel_after" and armed["trigger_time"] > armed["current_time"]
        switch = await db(DeadManSwitch.objects.get)(pk=trader_key.pk)
        assert switch.timeout_ms == 5000 and switch.trigger_at is not None
        disarmed = await ws.ask({"op": "cancel_after", "id": "e", "timeout_ms": 0})
        assert disarmed["trigger_time"] is None


@scenario
async def test_cancel_on_disconnect(runner, trader_key):
    async with connected() as ws:
        await authed(ws, trader_key, cancel_on_disconnect=True)
        placed = await ws.ask({"op": "place_order", "id": 1, **LIMIT})
        await db(runner.step)()
    # The connection is gone: its orders are being cancelled.
    await db(runner.step)()
    order = await db(Order.objects.get)(pk=int(placed["order"]["order_id"]))
    assert (order.status, order.cancel_reason) == ("cancelled", "disconnect")


@scenario
async def test_without_cancel_on_disconnect_orders_stay(runner, trader_key):
    async with connected() as ws:
        await authed(ws, trader_key)
        placed = await ws.ask({"op": "place_order", "id": 1, **LIMIT})
        await db(runner.step)()
    await db(runner.step)()
    order = await db(Order.objects.get)(pk=int(placed["order"]["order_id"]))
    assert order.status == "open"


@scenario
async def test_amend_order_and_cancel_by_client_id(runner, trader_key):
    async with connected() as ws:
        await authed(ws, trader_key)
        first = (await ws.ask({"op": "place_order", "id": 1, **LIMIT, "client_order_id": "m-1"}))["order"]
        second = (await ws.ask({"op": "place_order", "id": 2, **LIMIT, "client_order_id": "m-2"}))["order"]
        await db(runner.step)()
        amended = await ws.ask({"op": "amend_order", "id": 3, "order_id": first["order_id"], "quantity": "0.3000",
                                "client_order_id": "m-1b"})
        assert (amended["type"], amended["id"], amended["order"]["order_id"]) == ("order", 3, first["order_id"])
        assert amended["order"]["client_order_id"] == "m-1b"
        await db(runner.step)()
        order = await db(Order.objects.get)(pk=int(first["order_id"]))
        assert (order.quantity, order.client_order_id, order.status) == (D("0.3"), "m-1b", "open")
        # refusals carry REST's codes
        below = await ws.ask({"op": "amend_order", "id": 4, "order_id": first["order_id"], "quantity": "0"})
        assert below["code"] == "validation_error", below
        nothing = await ws.ask({"op": "amend_order", "id": 5, "order_id": first["order_id"]})
        assert (nothing["code"], nothing["errors"][0]["code"]) == ("validation_error", "required")
        unknown = await ws.ask({"op": "amend_order", "id": 6, "order_id": "999999", "price": "99.00"})
        assert unknown["code"] == "not_found"
        extra = await ws.ask({"op": "amend_order", "id": 7, "order_id": first["order_id"], "stop_price": "1.00"})
        assert (extra["code"], extra["errors"][0]["code"]) == ("validation_error", "unknown_field")
        # cancel by the new client order id
        cancelled = await ws.ask({"op": "cancel_order", "id": 8, "client_order_id": "m-1b"})
        assert cancelled["order"]["order_id"] == first["order_id"]
        await db(runner.step)()
        assert (await db(Order.objects.get)(pk=int(first["order_id"]))).status == "cancelled"
        assert (await db(Order.objects.get)(pk=int(second["order_id"]))).status == "open"


@scenario
async def test_amend_counts_against_the_orders_budget(runner, trader_key, settings):
    settings.BOURSE_RATE_LIMITS = {**settings.BOURSE_RATE_LIMITS, "orders": "1/86400"}
    async with connected() as ws:
        await authed(ws, trader_key)
        placed = (await ws.ask({"op": "place_order", "id": 1, **LIMIT}))["order"]
        refused = await ws.ask({"op": "amend_order", "id": 2, "order_id": placed["order_id"], "quantity": "0.1000"})
        assert (refused["code"], refused["policy"]) == ("rate_limited", "orders")
