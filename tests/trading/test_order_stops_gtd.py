"""Stop orders and good-till-date expiry through the services, the engine runner (stepped by
hand, rebuilt to stand for a restart) and settlement.

Market BTC-USD: tick 0.01, lot 0.0001, min notional 1 USD, maker fee 0.1%, taker 0.2%.
"""
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.utils import timezone

from accounts.models import Balance
from audit.models import AuditEvent
from tests.factories import AccountFactory
from tests.support import fund
from trading import settlement
from trading.models import OutboxEvent, Trade
from trading.reconciliation import reconciliation_run
from trading.runner import MarketRunner
from trading.services import order_amend, order_cancel, order_submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def traders(market):
    accounts = [AccountFactory(name=name) for name in ("alice", "bob", "carol", "dave")]
    for account in accounts:
        fund(account, USD="10000", BTC="10")
    return accounts


def submit(account, **params):
    return order_submit(account=account, market="BTC-USD", **params).order


def limit(account, side, price, quantity, **extra):
    return submit(account, side=side, type="limit", price=price, quantity=quantity, **extra)


def fresh(order):
    order.refresh_from_db()
    return order


def restarted(runner):
    """A new engine for the market, rebuilt from what committed (a restart)."""
    engine = MarketRunner(runner.market, runner.token)
    engine.rebuild()
    return engine


def at(monkeypatch, moment):
    monkeypatch.setattr("trading.runner.timezone.now", lambda: moment)


def test_stop_orders_hold_wait_and_trigger_in_sequence(runner, traders):
    alice, bob, carol, dave = traders
    # given two buy stops at 101 (alice's first) and liquidity above
    usd_before = Balance.objects.get(account=alice, asset_id="USD").available
    first = submit(alice, side="buy", type="stop_limit", stop_price="101.00", price="103.00", quantity="0.1000")
    second = submit(bob, side="buy", type="stop_market", stop_price="101.00", quote_quantity="50.00")
    runner.step()
    assert (fresh(first).status, fresh(second).status) == ("untriggered", "untriggered")
    # funds held as for the limit form: 0.1 × 103 + the taker fee at most
    assert Balance.objects.get(account=alice, asset_id="USD").available == usd_before - D("10.3206")
    limit(dave, "sell", "101.00", "0.2000")
    limit(dave, "sell", "102.00", "1.0000")
    runner.step()
    assert fresh(first).status == "untriggered"  # a resting order is not a trade
    # when a trade prints at 101
    limit(carol, "buy", "101.00", "0.0500")
    runner.step()
    # then both stops entered, alice's first (accepted first): she takes the rest at 101
    first, second = fresh(first), fresh(second)
    assert (first.status, first.filled_quantity) == ("filled", D("0.1000"))
    fills = list(Trade.objects.filter(taker_order__in=[first, second]).order_by("id").values_list("taker_order_id", "price"))
    assert fills[0] == (first.pk, D("101.00")) and fills[-1][0] == second.pk
    assert second.status == "filled"  # budget spent
    assert AuditEvent.objects.filter(action="order.triggered").count() == 2
    payloads = [e.payload for e in OutboxEvent.objects.filter(channel="orders", account=alice).order_by("id")]
    assert [p["status"] for p in payloads] == ["untriggered", "filled"]
    settlement.settlement_run(runner.market.pk)
    assert reconciliation_run().ok


def test_a_sell_stop_triggers_on_a_trade_at_or_below(runner, traders):
    alice, bob, carol, _ = traders
    stop = submit(alice, side="sell", type="stop_limit", stop_price="99.00", price="98.00", quantity="0.1000")
    limit(bob, "buy", "99.50", "0.1000")
    limit(bob, "buy", "98.50", "0.5000")
    runner.step()
    limit(carol, "sell", "99.50", "0.1000")  # trade at 99.50: above the stop
    runner.step()
    assert fresh(stop).status == "untriggered"
    limit(carol, "sell", "98.50", "0.1000")  # trade at 98.50: at or below
    runner.step()
    stop = fresh(stop)
    assert (stop.status, stop.filled_quantity) == ("filled", D("0.1000"))
    assert Trade.objects.filter(taker_order=stop, price=D("98.50")).exists()


def test_untriggered_stops_survive_a_restart_in_trigger_priority(runner, traders):
    alice, bob, carol, dave = traders
    early = submit(alice, side="buy", type="stop_limit", stop_price="101.00", price="101.00", quantity="0.1000")
    late = submit(bob, side="buy", type="stop_limit", stop_price="100.50", price="101.00", quantity="0.1000")
    runner.step()
    engine = restarted(runner)
    assert [o.order_id for o in engine.book.stop_orders()] == [early.pk, late.pk]
    limit(dave, "sell", "101.00", "0.1500")
    limit(carol, "buy", "101.00", "0.0100")
    engine.step()
    # both triggered by the one trade: the earlier acceptance goes first
    assert fresh(early).filled_quantity == D("0.1000") and fresh(late).filled_quantity == D("0.0400")


def test_cancel_and_amend_an_untriggered_stop(runner, traders):
    alice, *_ = traders
    stop = submit(alice, side="buy", type="stop_limit", stop_price="101.00", price="102.00", quantity="0.1000")
    runner.step()
    order_amend(alice, stop.pk, price="101.50", quantity="0.2000")
    runner.step()
    stop = fresh(stop)
    assert (stop.status, stop.price, stop.quantity) == ("untriggered", D("101.50"), D("0.2000"))
    assert restarted(runner).book.stop_orders()[0].price == 10150
    order_cancel(account=alice, order_id=stop.pk)
    runner.step()
    assert (fresh(stop).status, stop.cancel_reason) == ("cancelled", "user")
    settlement.settlement_run(runner.market.pk)
    assert Balance.objects.get(account=alice, asset_id="USD").locked == 0
    assert reconciliation_run().ok


def test_gtd_expires_on_time(runner, traders, monkeypatch):
    alice, *_ = traders
    expire = timezone.now() + timedelta(minutes=5)
    order = limit(alice, "buy", "100.00", "0.1000", time_in_force="gtd", expire_time=expire)
    runner.step()
    assert fresh(order).status == "open" and runner.seconds_to_expiry() > 200
    at(monkeypatch, expire - timedelta(microseconds=1))
    assert runner.step() == 0 and fresh(order).status == "open"
    at(monkeypatch, expire)
    assert runner.step() == 1  # an expiry alone makes a batch
    assert (fresh(order).status, order.cancel_reason) == ("cancelled", "expired")
    assert AuditEvent.objects.filter(action="order.expired", target_id=str(order.pk)).exists()
    settlement.settlement_run(runner.market.pk)
    assert Balance.objects.get(account=alice, asset_id="USD").locked == 0


def test_an_order_that_expired_while_the_engine_was_down_is_cancelled_before_the_batch(
        runner, traders, monkeypatch):
    alice, bob, *_ = traders
    expire = timezone.now() + timedelta(minutes=5)
    resting = limit(alice, "sell", "100.00", "0.1000", time_in_force="gtd", expire_time=expire)
    stop = submit(alice, side="sell", type="stop_market", stop_price="90.00", quantity="0.1000",
                  time_in_force="gtd", expire_time=expire)
    runner.step()
    # the engine is down past the expiry; a buy that would have matched arrives meanwhile
    buy = limit(bob, "buy", "100.00", "0.1000")
    at(monkeypatch, expire + timedelta(seconds=30))
    engine = restarted(runner)
    engine.step()
    assert (fresh(resting).status, resting.cancel_reason, resting.filled_quantity) == ("cancelled", "expired", 0)
    assert (fresh(stop).status, stop.cancel_reason) == ("cancelled", "expired")
    assert fresh(buy).status == "open" and not Trade.objects.exists()


def test_a_gtd_order_processed_after_its_expiry_never_trades(runner, traders, monkeypatch):
    alice, bob, *_ = traders
    limit(bob, "sell", "100.00", "0.1000")
    runner.step()
    expire = timezone.now() + timedelta(seconds=5)
    late = limit(alice, "buy", "100.00", "0.1000", time_in_force="gtd", expire_time=expire)
    at(monkeypatch, expire + timedelta(seconds=1))  # the engine reaches it only after its time
    runner.step()
    assert (fresh(late).status, late.cancel_reason, late.filled_quantity) == ("cancelled", "expired", 0)
