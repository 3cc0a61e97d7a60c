"""An order entered over FIX or WebSocket counts the key's request budget and the account's
``orders`` budget in turn — as REST's gate does, in ONE round trip to the rate-limit store —
stopping at the first one exceeded; a FIX replace (G) counts the ``orders`` budget like REST's
amend; a NewOrderSingle the session layer refuses still counts against the key's budget."""
from decimal import Decimal

import pytest
import quickfix as fix

from exchange import ratelimit
from tests.factories import ApiKeyFactory
from tests.support import fund
from trading.fix.application import application_handle
from trading.fix.codec import FieldError, Message
from trading.models import Order
from trading.ws import order_entry

from .support import Processes, QuickFixClient, now_fix, qf_new_order, qf_replace

pytestmark = pytest.mark.django_db(transaction=True)

DAY = 86_400  # budgets that must run out count in day-long windows: no window edge mid-test


def _order(cl_ord_id, tags=None):
    fields = {35: "D", 11: cl_ord_id, 55: "BTC-USD", 54: "1", 60: now_fix(), 40: "2", 38: "0.0100", 44: "100.00"}
    fields.update(tags or {})
    return Message([(tag, value) for tag, value in fields.items() if value is not None])


def _counts(key):
    return (ratelimit.hit(ratelimit.KEY, key.key_id, increment=False).count,
            ratelimit.hit(ratelimit.ORDERS, key.account.pk, increment=False).count)


@pytest.fixture
def key(market, settings):
    settings.BOURSE_RATE_LIMITS = {**settings.BOURSE_RATE_LIMITS, "key": f"100/{DAY}", "orders": f"100/{DAY}"}
    key = ApiKeyFactory()
    fund(key.account, USD="10000")
    return key


@pytest.fixture
def round_trips(monkeypatch):
    """Calls to the rate-limit store's scripts (Redis): one per round trip."""
    calls = []
    run_script = ratelimit.run_script

    def counted(client, source, keys, args):
        calls.append(len(keys))
        return run_script(client, source, keys, args)

    monkeypatch.setattr(ratelimit, "run_script", counted)
    return calls


def test_an_order_counts_both_budgets_in_one_round_trip(key, round_trips, settings):
    assert application_handle(key.key_id, key.account, _order("a")).messages == []  # accepted
    fix_calls = list(round_trips)
    assert _counts(key) == (1, 1)
    round_trips.clear()
    placed = order_entry.place_order(key.key_id, "127.0.0.1", {
        "op": "place_order", "id": 1, "market": "BTC-USD", "side": "buy", "type": "limit", "price": "100.00",
        "quantity": "0.0100"})
    ws_calls = list(round_trips)
    assert placed["type"] == "order"
    assert _counts(key) == (2, 2)
    if settings.REDIS_URL:  # both budgets in one call to the store each time
        assert fix_calls == [2] and ws_calls == [2]


def test_an_order_over_the_keys_budget_spends_nothing_else(key, settings):
    settings.BOURSE_RATE_LIMITS = {**settings.BOURSE_RATE_LIMITS, "key": f"1/{DAY}", "orders": f"5/{DAY}"}
    assert application_handle(key.key_id, key.account, _order("a")).messages == []
    [(msg_type, report)] = application_handle(key.key_id, key.account, _order("b")).messages
    assert msg_type == "8" and dict(report)[39] == "8" and dict(report)[58].startswith("rate_limited: Rate limit 'key'")
    assert _counts(key) == (2, 1)  # the orders budget was not spent by the refused one
    assert Order.objects.filter(account=key.account).count() == 1


def test_a_replace_counts_against_the_orders_budget(key, settings):
    settings.BOURSE_RATE_LIMITS = {**settings.BOURSE_RATE_LIMITS, "orders": f"1/{DAY}"}
    assert application_handle(key.key_id, key.account, _order("a")).messages == []
    replace = Message([(35, "G"), (41, "a"), (11, "a2"), (55, "BTC-USD"), (54, "1"), (60, now_fix()), (40, "2"),
                       (38, "0.0200"), (44, "100.00")])
    [(msg_type, reject)] = application_handle(key.key_id, key.account, replace).messages
    fields = dict(reject)
    assert msg_type == "9" and fields[434] == "2" and fields[102] == "99"
    assert fields[58].startswith("rate_limited: Rate limit 'orders'")
    order = Order.objects.get(account=key.account)
    assert (order.client_order_id, order.quantity) == ("a", Decimal("0.0100"))  # nothing amended


def test_a_malformed_order_still_counts_against_the_keys_budget(key, settings):
    settings.BOURSE_RATE_LIMITS = {**settings.BOURSE_RATE_LIMITS, "key": f"1/{DAY}", "orders": f"5/{DAY}"}
    with pytest.raises(FieldError):  # the session answers with a Reject
        application_handle(key.key_id, key.account, _order("a", {55: None}))
    assert _counts(key) == (1, 0)
    # Over the key's budget now: the answer is the budget's refusal, as if counted first.
    [(msg_type, report)] = application_handle(key.key_id, key.account, _order("b", {55: None})).messages
    assert msg_type == "8" and dict(report)[58].startswith("rate_limited")
    assert _counts(key) == (2, 0)


@pytest.mark.slow
def test_live_gateway_refuses_the_next_order_and_replace_over_the_orders_budget(key):
    """The gateway and engine as processes, QuickFIX as the initiator: two orders and a replace
    spend an ``orders`` budget of 3, so the next D and the next G are refused, nothing done."""
    processes = Processes(BOURSE_RATE_LIMIT_ORDERS=f"3/{DAY}")
    client = QuickFixClient(key, processes.port)
    try:
        assert client.start(), processes.output()
        for cl_ord_id in ("a", "b"):
            client.send(qf_new_order(cl_ord_id, fix.Side_BUY, "1.0000", "100.00"))
            new = client.next_app(timeout=15)
            assert (new.msg_type, new.get(11), new.get(150)) == ("8", cl_ord_id, "0"), new.fields
        client.send(qf_replace("a2", "a", fix.Side_BUY, "0.5000", "100.00"))
        replaced = client.next_app(timeout=15)
        assert (replaced.msg_type, replaced.get(11), replaced.get(150)) == ("8", "a2", "5"), replaced.fields

        # the budget is spent (D, D, G): the next order is refused with a Rejected report
        client.send(qf_new_order("c", fix.Side_BUY, "1.0000", "100.00"))
        refused = client.next_app(timeout=15)
        assert (refused.msg_type, refused.get(11), refused.get(150), refused.get(39)) == ("8", "c", "8", "8"), refused.fields
        assert refused.get(58).startswith("rate_limited: Rate limit 'orders'"), refused.fields
        # and the next replace with an OrderCancelReject
        client.send(qf_replace("b2", "b", fix.Side_BUY, "0.5000", "100.00"))
        reject = client.next_app(timeout=15)
        assert (reject.msg_type, reject.get(11), reject.get(41), reject.get(434), reject.get(102)) == (
            "9", "b2", "b", "2", "99"), reject.fields
        assert reject.get(58).startswith("rate_limited: Rate limit 'orders'"), reject.fields
        orders = Order.objects.filter(account=key.account)
        assert sorted((o.client_order_id, o.quantity) for o in orders) == [("a2", Decimal("0.5")), ("b", Decimal("1"))]
    finally:
        client.stop()
        print(processes.stop())  # shown when the test fails
