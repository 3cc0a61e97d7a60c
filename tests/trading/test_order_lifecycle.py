"""The path of an order through the services, the engine runner and settlement.

Market BTC-USD: tick 0.01, lot 0.0001, min notional 1 USD, maker fee 0.1%, taker 0.2%.
The engine is stepped by hand; Celery runs inline, so a step also settles its batch.
"""
from decimal import Decimal as D

import pytest

from accounts.models import Journal
from exchange import errors
from tests.factories import AccountFactory
from tests.support import balances, fund
from trading.models import Command, Fill, Order, Trade
from trading.services import market_set_status, order_cancel, order_cancel_all, order_submit

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


def fees_usd():
    from accounts.models import Account, Balance

    row = Balance.objects.filter(account__system_role=Account.SystemRole.FEES, asset_id="USD").first()
    return row.available if row else D(0)


def refreshed(*orders):
    for order in orders:
        order.refresh_from_db()
    return orders


def test_crossing_orders_trade_at_maker_price_and_settle_exactly(runner, alice, bob):
    # given a resting sell of 1 BTC at 100
    sell = limit(alice, "sell", "100.00", "1.0000")
    runner.step()
    # when bob buys 0.5 at up to 101
    buy = limit(bob, "buy", "101.00", "0.5000")
    assert buy.hold_amount == D("50.601")  # 50.50 notional + taker fee 0.101 at most
    runner.step()
    # then one trade at the maker's price, both sides filled as far as they go
    sell, buy = refreshed(sell, buy)
    assert (sell.status, sell.filled_quantity) == ("partially_filled", D("0.5"))
    assert (buy.status, buy.filled_quantity, buy.average_price) == ("filled", D("0.5"), D("100"))
    trade = Trade.objects.get()
    assert (trade.price, trade.quantity, trade.taker_side, trade.settled) == (D("100"), D("0.5"), "buy", True)
    fills = {f.liquidity: f for f in Fill.objects.all()}
    assert (fills["taker"].fee, fills["maker"].fee) == (D("0.1"), D("0.05"))
    # and balances are exact: bob paid 50 + 0.10 fee and got the 0.501 price improvement back
    assert balances(bob) == {"USD": (D("949.9"), D("0")), "BTC": (D("10.5"), D("0"))}
    assert balances(alice) == {"USD": (D("1049.95"), D("0")), "BTC": (D("9"), D("0.5"))}
    assert fees_usd() == D("0.15")
    assert (buy.hold_remaining, sell.hold_remaining) == (D(0), D("0.5"))


def test_resting_buy_keeps_exactly_what_its_remainder_needs(runner, alice, bob):
    buy = limit(bob, "buy", "101.00", "1.0000")  # holds 101 + 0.202
    runner.step()
    limit(alice, "sell", "100.00", "0.4000")  # takes 0.4 at bob's 101
    runner.step()
    (buy,) = refreshed(buy)
    # 0.6 left needs 60.60 + 0.1212 worst-case fee; the maker fee saved 0.0404 comes back now
    assert buy.hold_remaining == D("60.7212")
    assert balances(bob)["USD"] == (D("1000") - D("40.4404") - D("60.7212"), D("60.7212"))
    assert balances(alice)["USD"] == (D("1000") + D("40.4") - D("0.0808"), D("0"))


def test_ioc_remainder_is_cancelled_and_released(runner, alice, bob):
    limit(alice, "sell", "100.00", "0.3000")
    runner.step()
    ioc = limit(bob, "buy", "100.00", "1.0000", time_in_force="ioc")
    runner.step()
    (ioc,) = refreshed(ioc)
    assert (ioc.status, ioc.cancel_reason, ioc.filled_quantity, ioc.remaining_quantity) == ("cancelled", "ioc", D("0.3"), D(0))
    assert balances(bob)["USD"] == (D("1000") - D("30") - D("0.06"), D(0))
    assert ioc.hold_remaining == 0 and ioc.close_settled


def test_fok_that_cannot_fill_trades_nothing(runner, alice, bob):
    resting = limit(alice, "sell", "100.00", "0.3000")
    runner.step()
    fok = limit(bob, "buy", "100.00", "1.0000", time_in_force="fok")
    runner.step()
    fok, resting = refreshed(fok, resting)
    assert (fok.status, fok.cancel_reason, fok.filled_quantity) == ("cancelled", "fok", D(0))
    assert resting.status == "open" and not Trade.objects.exists()
    assert balances(bob)["USD"] == (D("1000"), D("0"))


def test_post_only_that_would_cross_is_rejected(runner, alice, bob):
    limit(alice, "sell", "100.00", "0.3000")
    runner.step()
    maker_only = limit(bob, "buy", "100.00", "0.1000", post_only=True)
    runner.step()
    (maker_only,) = refreshed(maker_only)
    assert (maker_only.status, maker_only.reject_reason) == ("rejected", "post_only_would_cross")
    assert balances(bob)["USD"] == (D("1000"), D("0"))


@pytest.mark.parametrize(
    "stp, incoming_status, resting_status",
    [
        ("cancel_newest", "cancelled", "open"),
        ("cancel_oldest", "open", "cancelled"),
        ("cancel_both", "cancelled", "cancelled"),
    ],
)
def test_self_trade_prevention_outcomes_persist(runner, alice, stp, incoming_status, resting_status):
    resting = limit(alice, "sell", "100.00", "0.5000")
    runner.step()
    incoming = limit(alice, "buy", "100.00", "0.5000", stp=stp)
    runner.step()
    incoming, resting = refreshed(incoming, resting)
    assert (incoming.status, resting.status) == (incoming_status, resting_status)
    for order in (incoming, resting):
        if order.status == "cancelled":
            assert order.cancel_reason == "stp"
    assert not Trade.objects.exists()
    # whatever was cancelled gave its hold back; what rests still holds exactly its need
    expected_usd_locked = D("50.1") if incoming_status == "open" else D(0)
    expected_btc_locked = D("0.5") if resting_status == "open" else D(0)
    assert balances(alice)["USD"][1] == expected_usd_locked
    assert balances(alice)["BTC"][1] == expected_btc_locked


def test_cancel_releases_exactly_the_remainder(runner, alice, bob):
    sell = limit(alice, "sell", "100.00", "1.0000")
    runner.step()
    limit(bob, "buy", "100.00", "0.2500")
    runner.step()
    order, answered = order_cancel(account=alice, order_id=sell.pk)
    assert answered is False  # nobody waited; the engine takes it on its next step
    runner.step()
    (sell,) = refreshed(sell)
    assert (sell.status, sell.cancel_reason, sell.filled_quantity) == ("cancelled", "user", D("0.25"))
    assert balances(alice)["BTC"] == (D("9.75"), D(0))
    assert Command.objects.filter(kind="cancel").get().result == "cancelled"
    with pytest.raises(errors.OrderClosed):
        order_cancel(account=alice, order_id=sell.pk)


def test_cancel_that_arrives_after_the_fill_reports_order_closed(runner, alice, bob):
    sell = limit(alice, "sell", "100.00", "0.2500")
    runner.step()
    limit(bob, "buy", "100.00", "0.2500")  # will fill it ...
    order_cancel(account=alice, order_id=sell.pk)  # ... before the engine reaches the cancel
    runner.step()
    assert Command.objects.filter(kind="cancel").get().result == "unknown_order"
    (sell,) = refreshed(sell)
    assert sell.status == "filled"


def test_another_accounts_order_is_not_found(runner, alice, bob):
    sell = limit(alice, "sell", "100.00", "1.0000")
    with pytest.raises(errors.NotFound):
        order_cancel(account=bob, order_id=sell.pk)
    with pytest.raises(errors.NotFound):
        order_cancel(account=bob, order_id="not-a-number")
    assert not Command.objects.filter(kind="cancel").exists()


def test_cancel_all(runner, alice, bob):
    orders = [limit(alice, "sell", f"{100 + i}.00", "0.1000") for i in range(3)]
    other = limit(bob, "sell", "110.00", "0.1000")
    runner.step()
    cancelled = order_cancel_all(account=alice, market="BTC-USD")
    assert cancelled == [o.pk for o in orders]
    runner.step()
    assert set(Order.objects.filter(account=alice).values_list("status", flat=True)) == {"cancelled"}
    (other,) = refreshed(other)
    assert other.status == "open"
    assert balances(alice)["BTC"] == (D("10"), D(0))


def test_market_buy_spends_at_most_its_quote_budget_including_fees(runner, alice, bob):
    limit(alice, "sell", "100.00", "1.0000")
    runner.step()
    buy = order_submit(account=bob, market="BTC-USD", side="buy", type="market", quote_quantity="50.10").order
    runner.step()
    (buy,) = refreshed(buy)
    assert (buy.status, buy.filled_quantity) == ("filled", D("0.5"))  # 50.00 + 0.10 fee
    assert balances(bob)["USD"] == (D("949.9"), D(0))


def test_market_buy_capped_by_quantity_and_budget(runner, alice, bob):
    limit(alice, "sell", "100.00", "1.0000")
    runner.step()
    buy = order_submit(account=bob, market="BTC-USD", side="buy", type="market",
                       quantity="0.2000", quote_quantity="100.00").order
    runner.step()
    (buy,) = refreshed(buy)
    assert (buy.status, buy.filled_quantity) == ("filled", D("0.2"))  # the quantity bound first
    assert balances(bob)["USD"] == (D("1000") - D("20.04"), D(0))  # the rest of the budget released


def test_market_sell_without_enough_bids_is_partly_filled_then_cancelled(runner, alice, bob):
    limit(alice, "buy", "100.00", "0.2000")
    runner.step()
    sell = order_submit(account=bob, market="BTC-USD", side="sell", type="market", quantity="0.5000").order
    runner.step()
    (sell,) = refreshed(sell)
    assert (sell.status, sell.cancel_reason, sell.filled_quantity) == ("cancelled", "market_no_liquidity", D("0.2"))
    assert balances(bob)["BTC"] == (D("9.8"), D(0))
    assert balances(bob)["USD"] == (D("1000") + D("20") - D("0.04"), D(0))


def test_partial_fills_across_levels_and_orders(runner, alice, bob):
    carol = AccountFactory(name="carol")
    fund(carol, BTC="1")
    makers = [limit(alice, "sell", "100.00", "0.1000"), limit(carol, "sell", "100.00", "0.1000"),
              limit(alice, "sell", "100.50", "0.2000")]
    runner.step()
    taker = limit(bob, "buy", "101.00", "0.3500")
    runner.step()
    refreshed(taker, *makers)
    assert [m.status for m in makers] == ["filled", "filled", "partially_filled"]
    assert list(Trade.objects.values_list("price", "quantity")) == [
        (D("100"), D("0.1")), (D("100"), D("0.1")), (D("100.5"), D("0.15"))
    ]
    assert taker.average_price == (D("20") + D("15.075")) / D("0.35")


@pytest.mark.parametrize(
    "params, field",
    [
        ({"side": "hold"}, "side"),
        ({"type": "stop"}, "type"),
        ({"time_in_force": "day"}, "time_in_force"),
        ({"stp": "none"}, "stp"),
        ({"price": 100.5}, "price"),
        ({"quantity": 1}, "quantity"),
        ({"price": "abc"}, "price"),
        ({"price": "100.001"}, "price"),
        ({"quantity": "0.00001"}, "quantity"),
        ({"quantity": "0.0001", "price": "1.00"}, "quantity"),  # notional 0.0001 < 1
        ({"price": None}, "price"),
        ({"client_order_id": "has space"}, "client_order_id"),
        ({"client_order_id": "x" * 37}, "client_order_id"),
        ({"post_only": "yes"}, "post_only"),
        ({"post_only": True, "time_in_force": "ioc"}, "post_only"),
        ({"quote_quantity": "10"}, "quote_quantity"),
    ],
)
def test_invalid_orders_are_refused_and_write_nothing(runner, bob, params, field):
    journals = Journal.objects.count()
    args = {"market": "BTC-USD", "side": "buy", "type": "limit", "price": "100.00", "quantity": "0.1000", **params}
    with pytest.raises(errors.ValidationError) as refused:
        order_submit(account=bob, **args)
    assert field in [e["field"] for e in refused.value.errors]
    assert not Order.objects.exists() and not Command.objects.exists()
    assert Journal.objects.count() == journals


@pytest.mark.parametrize(
    "params, field",
    [
        ({"price": "100.00"}, "price"),
        ({"quote_quantity": None}, "quote_quantity"),  # a buy's cost must be bounded
        ({"quote_quantity": "0.50"}, "quote_quantity"),  # below min notional
        ({"quote_quantity": "10.0000001"}, "quote_quantity"),
        ({"post_only": True}, "post_only"),
        ({"side": "sell"}, "quote_quantity"),
        ({"side": "sell", "quote_quantity": None, "quantity": None}, "quantity"),
        ({"time_in_force": "fok", "quantity": None}, "quantity"),
    ],
)
def test_invalid_market_orders(runner, bob, params, field):
    args = {"market": "BTC-USD", "side": "buy", "type": "market", "quote_quantity": "10.00", **params}
    with pytest.raises(errors.ValidationError) as refused:
        order_submit(account=bob, **args)
    assert field in [e["field"] for e in refused.value.errors]
    assert not Order.objects.exists()


def test_unknown_market_halted_market_and_insufficient_balance_write_nothing(runner, market, bob):
    journals = Journal.objects.count()
    with pytest.raises(errors.MarketNotFound):
        limit_args = {"side": "buy", "type": "limit", "price": "1.00", "quantity": "1.0000"}
        order_submit(account=bob, market="ETH-USD", **limit_args)
    with pytest.raises(errors.InsufficientBalance):
        limit(bob, "buy", "1000.00", "1.0000")  # needs 1002.00 USD
    market_set_status(symbol="BTC-USD", status="halted")
    with pytest.raises(errors.MarketHalted):
        limit(bob, "buy", "100.00", "0.1000")
    assert not Order.objects.exists() and Journal.objects.count() == journals


def test_client_order_id_is_idempotent(runner, bob):
    first = order_submit(account=bob, market="BTC-USD", side="buy", type="limit", price="100.00",
                         quantity="0.1000", client_order_id="my-1")
    again = order_submit(account=bob, market="BTC-USD", side="buy", type="limit", price="100.00",
                         quantity="0.1000", client_order_id="my-1")
    assert first.created and not again.created and again.order.pk == first.order.pk
    with pytest.raises(errors.DuplicateClientOrderId):
        order_submit(account=bob, market="BTC-USD", side="buy", type="limit", price="100.01",
                     quantity="0.1000", client_order_id="my-1")
    assert Order.objects.count() == 1
    assert balances(bob)["USD"][1] == D("10.02")  # held once
    # another account may use the same id
    other = AccountFactory()
    fund(other, USD="100")
    assert order_submit(account=other, market="BTC-USD", side="buy", type="limit", price="100.00",
                        quantity="0.1000", client_order_id="my-1").created


def test_a_resubmission_refused_for_balance_or_halt_answers_with_the_order_it_repeats(runner, bob):
    """The client_order_id is looked up when an order cannot be written (the unique constraint
    refuses a second one): a resubmission that would now be refused for the balance (the
    first spent it) or a halt still gets the earlier order back, not the refusal."""
    params = {"market": "BTC-USD", "side": "buy", "type": "limit", "price": "900.00", "quantity": "1.0000",
              "client_order_id": "all-in"}
    first = order_submit(account=bob, **params)  # holds 901.80 of 1000 USD
    again = order_submit(account=bob, **params)
    assert not again.created and again.order.pk == first.order.pk
    market_set_status(symbol="BTC-USD", status="halted")
    assert order_submit(account=bob, **params).order.pk == first.order.pk
    with pytest.raises(errors.MarketHalted):  # no earlier order with this id: the refusal stands
        order_submit(account=bob, **{**params, "client_order_id": "other"})
    assert Order.objects.count() == 1


def test_restart_rebuilds_the_same_book(runner, market, alice, bob):
    limit(alice, "sell", "100.00", "1.0000")
    limit(alice, "sell", "100.00", "0.5000")
    limit(bob, "buy", "99.00", "0.3000")
    runner.step()
    limit(bob, "buy", "100.00", "0.2500")
    runner.step()
    from trading.runner import MarketRunner

    fresh = MarketRunner(market, "test-owner")
    fresh.rebuild()
    assert fresh.book.depth() == runner.book.depth()
    assert fresh.book.resting_orders() == runner.book.resting_orders()
    assert fresh.book.sequence == runner.book.sequence
    fresh.book.check_invariants()


def test_a_stale_owner_cannot_commit(runner, market, alice):
    from trading.models import EngineState
    from trading.runner import LostOwnership

    limit(alice, "sell", "100.00", "1.0000")
    EngineState.objects.filter(market=market).update(owner_token="someone-else")
    with pytest.raises(LostOwnership):
        runner.step()
    assert Order.objects.get().status == "pending" and not Command.objects.filter(processed=True).exists()
