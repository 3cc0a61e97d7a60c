"""Amend and cancel by client order id, through the services, the engine runner and settlement.

Market BTC-USD: tick 0.01, lot 0.0001, min notional 1 USD, maker fee 0.1%, taker 0.2%. The
engine is stepped by hand; Celery runs inline, so a step also settles its batch.
"""
from decimal import Decimal as D

import pytest

from accounts.models import Balance
from audit.models import AuditEvent
from exchange import errors
from tests.factories import AccountFactory
from tests.support import fund
from trading import settlement
from trading.models import Command, Order, OutboxEvent
from trading.reconciliation import reconciliation_run
from trading.services import order_amend, order_cancel_by_client_id, order_submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(market):
    account = AccountFactory(name="alice")
    fund(account, USD="1000", BTC="10")
    return account


@pytest.fixture
def bob(market):
    account = AccountFactory(name="bob")
    fund(account, USD="1000", BTC="10")
    return account


def limit(account, side, price, quantity, **extra):
    return order_submit(
        account=account, market="BTC-USD", side=side, type="limit", price=price, quantity=quantity, **extra
    ).order


def usd(account):
    row = Balance.objects.get(account=account, asset_id="USD")
    return row.available, row.locked


def fresh(order):
    order.refresh_from_db()
    return order


def test_quantity_down_keeps_priority_price_change_loses_it(runner, alice, bob):
    # given two buys at 100: alice's first, then bob's
    first = limit(alice, "buy", "100.00", "1.0000")
    second = limit(bob, "buy", "100.00", "1.0000")
    runner.step()
    # when alice reduces hers, she keeps her place: a sell of 0.5 fills her first
    order_amend(alice, first.pk, quantity="0.5000")
    runner.step()
    assert fresh(first).quantity == D("0.5000") and first.status == "open"
    limit(bob, "sell", "100.00", "0.2000")
    runner.step()
    assert fresh(first).filled_quantity == D("0.2000") and fresh(second).filled_quantity == 0
    # when alice moves her price away and back, she goes behind bob
    order_amend(alice, first.pk, price="99.00")
    runner.step()
    order_amend(alice, first.pk, price="100.00")
    runner.step()
    carol = AccountFactory(name="carol")
    fund(carol, BTC="1")
    limit(carol, "sell", "100.00", "0.1000")
    runner.step()
    assert fresh(second).filled_quantity == D("0.1000")
    assert fresh(first).filled_quantity == D("0.2000")
    assert Order.objects.filter(account=alice).count() == 1  # amended in place: one order throughout


def test_quantity_up_loses_priority_and_holds_more_atomically(runner, alice, bob):
    buy = limit(alice, "buy", "100.00", "1.0000")
    runner.step()
    available, locked = usd(alice)
    assert locked == D("100.20")  # 100 notional + taker fee 0.2 at most
    # when alice raises her quantity to 2, the extra need is held at once, with the command
    order, answered = order_amend(alice, buy.pk, quantity="2.0000")
    assert answered is False
    assert usd(alice) == (available - D("100.20"), D("200.40"))
    assert Command.objects.filter(order=buy, kind="amend", processed=False).count() == 1
    runner.step()
    buy = fresh(buy)
    assert (buy.quantity, buy.status, buy.hold_amount) == (D("2.0000"), "open", D("200.40"))
    # when she asks for more than she can pay, nothing is written
    with pytest.raises(errors.InsufficientBalance):
        order_amend(alice, buy.pk, quantity="20.0000")
    assert usd(alice) == (available - D("100.20"), D("200.40"))
    assert Command.objects.filter(order=buy, kind="amend").count() == 1
    assert reconciliation_run().ok


def test_amend_down_releases_the_hold_and_reconciles(runner, alice, bob):
    buy = limit(alice, "buy", "100.00", "2.0000")
    runner.step()
    # a partial fill, then the remaining quantity and the price both go down
    limit(bob, "sell", "100.00", "0.5000")
    runner.step()
    order_amend(alice, buy.pk, price="90.00", quantity="1.0000")
    runner.step()
    settlement.settlement_run(buy.market_id)
    buy = fresh(buy)
    assert buy.hold_review is False
    # 0.5 left at 90: 45 notional + 0.09 taker fee at most
    assert buy.hold_remaining == D("45.09")
    assert usd(alice)[1] == D("45.09")
    assert reconciliation_run().ok


def test_amend_to_a_crossing_price_trades_at_once(runner, alice, bob):
    sell = limit(bob, "sell", "101.00", "1.0000")
    buy = limit(alice, "buy", "100.00", "1.0000")
    runner.step()
    order, answered = order_amend(alice, buy.pk, price="101.00")
    runner.step()
    assert fresh(buy).status == "filled" and fresh(sell).status == "filled"
    settlement.settlement_run(buy.market_id)
    assert reconciliation_run().ok


def test_amend_refusals_name_the_field(runner, alice, bob):
    buy = limit(alice, "buy", "100.00", "1.0000")
    runner.step()
    limit(bob, "sell", "100.00", "0.4000")
    runner.step()
    cases = [
        ({"quantity": "0.4000"}, "quantity", "at_or_below_filled"),
        ({"quantity": "0.3000"}, "quantity", "at_or_below_filled"),
        ({"price": "100.001"}, "price", "tick_size"),
        ({"quantity": "0.50001"}, "quantity", "lot_size"),
        ({"price": 100}, "price", "invalid_type"),
        ({"client_order_id": "bad id!"}, "client_order_id", "invalid"),
        ({}, "price", "required"),
    ]
    for body, field, code in cases:
        with pytest.raises(errors.ValidationError) as refused:
            order_amend(alice, buy.pk, **body)
        assert (refused.value.errors[0]["field"], refused.value.errors[0]["code"]) == (field, code), body
    assert not Command.objects.filter(kind="amend").exists()
    with pytest.raises(errors.NotFound):
        order_amend(bob, buy.pk, price="99.00")  # another account's order
    filled = limit(bob, "buy", "100.50", "0.6000")
    runner.step()
    carol = AccountFactory(name="carol")
    fund(carol, BTC="1")
    limit(carol, "sell", "100.50", "0.6000")
    runner.step()
    assert fresh(filled).status == "filled"
    with pytest.raises(errors.OrderClosed):
        order_amend(bob, filled.pk, price="99.00")


def test_post_only_amend_that_would_cross_changes_nothing(runner, alice, bob):
    limit(bob, "sell", "101.00", "1.0000")
    buy = limit(alice, "buy", "100.00", "1.0000", post_only=True)
    runner.step()
    order_amend(alice, buy.pk, price="101.00")
    runner.step()
    command = Command.objects.get(kind="amend")
    assert command.result == "post_only_would_cross"
    assert fresh(buy).price == D("100.00") and buy.status == "open"


def test_client_order_id_amend_is_unique_and_reaches_events(runner, alice):
    one = limit(alice, "buy", "100.00", "1.0000", client_order_id="one")
    limit(alice, "buy", "99.00", "1.0000", client_order_id="two")
    runner.step()
    with pytest.raises(errors.DuplicateClientOrderId):
        order_amend(alice, one.pk, client_order_id="two")
    order_amend(alice, one.pk, client_order_id="uno")
    runner.step()
    assert fresh(one).client_order_id == "uno"
    last = OutboxEvent.objects.filter(channel="orders", account=alice).order_by("id").last()
    assert last.payload["order_id"] == str(one.pk) and last.payload["client_order_id"] == "uno"
    assert AuditEvent.objects.filter(action="order.amended", target_id=str(one.pk)).exists()


def test_cancel_by_client_order_id(runner, alice, bob, settings):
    order = limit(alice, "buy", "100.00", "1.0000", client_order_id="c-1")
    runner.step()
    with pytest.raises(errors.NotFound):
        order_cancel_by_client_id(account=bob, client_order_id="c-1")  # another account's id
    with pytest.raises(errors.NotFound):
        order_cancel_by_client_id(account=alice, client_order_id="nope")
    cancelled, answered = order_cancel_by_client_id(account=alice, client_order_id="c-1")
    assert cancelled.pk == order.pk and answered is False
    runner.step()
    assert fresh(order).status == "cancelled" and order.cancel_reason == "user"
    with pytest.raises(errors.OrderClosed):
        order_cancel_by_client_id(account=alice, client_order_id="c-1")


def test_amend_of_an_order_that_filled_first_is_order_closed(runner, alice, bob):
    buy = limit(alice, "buy", "100.00", "1.0000")
    runner.step()
    limit(bob, "sell", "100.00", "1.0000")
    order_amend(alice, buy.pk, price="100.50")  # queued behind the fill
    runner.step()
    assert Command.objects.get(kind="amend").result == "unknown_order"
    settlement.settlement_run(buy.market_id)
    assert fresh(buy).status == "filled" and buy.hold_remaining == 0
    assert reconciliation_run().ok
