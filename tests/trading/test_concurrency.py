"""Races that need real row locks (PostgreSQL): a halt against a submission, two markets
settling the same accounts. SQLite's one writer at a time cannot interleave them."""
import threading
import time
from decimal import Decimal as D

import pytest
from django.db import connection, connections, transaction

from accounts import ledger
from exchange import errors
from tests.factories import AccountFactory, AssetFactory, MarketFactory
from tests.support import fund
from trading.models import Market, Order, Trade
from trading.services import order_submit

pytestmark = pytest.mark.django_db(transaction=True)


def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs row locks held across concurrent transactions (PostgreSQL); SQLite serialises writers")


def _in_thread(target, *args):
    """Run ``target`` on a thread with its own database connection; return (thread, result)."""
    result = {}

    def run():
        try:
            result["value"] = target(*args)
        except BaseException as exc:  # reported to the test
            result["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def test_an_order_racing_a_halt_is_not_accepted_after_it(market):
    _postgres_only()
    trader = AccountFactory()
    fund(trader, USD="1000")
    halt_started, release_halt = threading.Event(), threading.Event()

    def halt():
        # market_set_status's transaction, held open between its write and its commit
        with transaction.atomic(durable=True):
            row = Market.objects.select_for_update().get(pk=market.pk)
            row.status = Market.Status.HALTED
            row.save(update_fields=["status"])
            halt_started.set()
            release_halt.wait(10)

    def submit():
        return order_submit(account=trader, market="BTC-USD", side="buy", type="limit", price="100.00",
                            quantity="1.0000").order

    halter, _ = _in_thread(halt)
    assert halt_started.wait(10)
    submitter, outcome = _in_thread(submit)  # validated while the market still reads open
    time.sleep(0.5)  # the submission reaches its transaction and waits on the market row
    release_halt.set()
    halter.join(10)
    submitter.join(10)
    assert isinstance(outcome.get("error"), errors.MarketHalted), outcome
    assert not Order.objects.exists()


def _zero_fee_market(base_code: str, usd):
    base = AssetFactory(code=base_code, scale=8)
    return MarketFactory(base=base, quote=usd, maker_fee_rate=D(0), taker_fee_rate=D(0), min_notional=D(0))


def test_two_markets_settling_the_same_accounts_do_not_deadlock(usd, monkeypatch):
    _postgres_only()
    from trading import settlement, tasks
    from trading.models import EngineState
    from trading.runner import MarketRunner

    btc, eth = _zero_fee_market("BTC", usd), _zero_fee_market("ETH", usd)
    a, b, c, d = (AccountFactory(name=name) for name in "abcd")
    for account in (a, b, c, d):
        fund(account, USD="10000", BTC="10", ETH="10")
    monkeypatch.setattr(tasks.settle_market, "delay", lambda *args, **kwargs: None)  # settle by hand below

    def trade(market, seller, buyer):
        for account, side in ((seller, "sell"), (buyer, "buy")):
            order_submit(account=account, market=market.symbol, side=side, type="limit", price="100.00",
                         quantity="1.0000")

    # BTC-USD's chunk settles a/b then c/d; ETH-USD's settles c/d then a/b: the second journal of
    # each needs the USD rows the other's first journal locked.
    trade(btc, a, b)
    trade(btc, c, d)
    trade(eth, c, d)
    trade(eth, a, b)
    for market in (btc, eth):
        EngineState.objects.update_or_create(market=market, defaults={"owner_token": "t"})
        runner = MarketRunner(market, "t")
        runner.rebuild()
        runner.step()
    assert Trade.objects.filter(settled=False).count() == 4

    # Widen the window between a chunk's journals so both chunks hold their first rows.
    real_post = ledger.post
    posted = threading.local()

    def slow_post(*args, **kwargs):
        journal = real_post(*args, **kwargs)
        if not getattr(posted, "once", False):
            posted.once = True
            time.sleep(0.5)
        return journal

    monkeypatch.setattr(ledger, "post", slow_post)
    runs = [_in_thread(settlement.settlement_run, market.pk) for market in (btc, eth)]
    for thread, _ in runs:
        thread.join(30)
    errors_seen = [result.get("error") for _, result in runs if "error" in result]
    assert errors_seen == []  # before: psycopg.errors.DeadlockDetected in one of them
    assert [result["value"][0] for _, result in runs] == [2, 2]
    assert Trade.objects.filter(settled=False).count() == 0
