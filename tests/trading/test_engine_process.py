"""The engine as a real process: verdicts reach waiting callers, a SIGKILL mid-stream
loses and duplicates nothing, ownership passes to a standby."""
import os
import random
import signal
import subprocess
import threading
import time
from decimal import Decimal as D

import pytest
from django.db import connection, connections

import matching as engine
from tests.factories import AccountFactory, AssetFactory, MarketFactory
from tests.support import PYTHON, fund, subprocess_env
from trading.models import Command, Market, Order, Trade
from trading.reconciliation import reconciliation_run
from trading.runner import engine_new_order
from trading.services import order_cancel, order_submit
from trading.settlement import settlement_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def start_engine(**env_extra) -> subprocess.Popen:
    env = {**subprocess_env(), **env_extra}
    return subprocess.Popen(
        [PYTHON, "manage.py", "run_engine", "--markets", "BTC-USD"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def stop(process: subprocess.Popen) -> str:
    if process.poll() is None:
        process.terminate()
    try:
        out, _ = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out.decode(errors="replace")


def wait_for(predicate, timeout=20.0, interval=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


@pytest.fixture
def setup_market():
    usd, btc = AssetFactory(code="USD", scale=6), AssetFactory(code="BTC", scale=8)
    market = MarketFactory(base=btc, quote=usd)
    traders = [AccountFactory() for _ in range(4)]
    for trader in traders:
        fund(trader, USD="1000000", BTC="1000")
    return market, traders


def test_callers_get_the_engines_verdict(setup_market):
    market, (alice, bob, *_) = setup_market
    process = start_engine()
    try:
        resting = order_submit(account=alice, market="BTC-USD", side="sell", type="limit",
                               price="100.00", quantity="1.0000", wait=10).order
        assert resting.status == "open", stop(process)
        taker = order_submit(account=bob, market="BTC-USD", side="buy", type="limit",
                             price="100.00", quantity="0.4000", wait=10).order
        assert taker.status == "filled"  # the verdict, not pending at the end of the wait
        cancelled, answered = order_cancel(account=alice, order_id=resting.pk, wait=10)
        assert answered and cancelled.status == "cancelled" and cancelled.filled_quantity == D("0.4")
    finally:
        stop(process)


def test_without_an_engine_the_caller_gets_pending_after_the_timeout(setup_market):
    market, (alice, *_) = setup_market
    started = time.monotonic()
    order = order_submit(account=alice, market="BTC-USD", side="sell", type="limit",
                         price="100.00", quantity="1.0000", wait=0.3).order
    assert order.status == "pending" and 0.3 <= time.monotonic() - started < 10
    assert Command.objects.filter(order=order, processed=False).exists()


def random_orders(traders, count, seed):
    rng = random.Random(seed)
    for _ in range(count):
        side = rng.choice(["buy", "sell"])
        price = D(rng.randint(9900, 10100)) / 100
        kind = rng.random()
        params = {"side": side, "type": "limit", "price": f"{price:.2f}", "quantity": f"{D(rng.randint(110, 2000)) / 10000:.4f}"}
        if kind < 0.1:
            params["time_in_force"] = "ioc"
        elif kind < 0.15 and side == "sell":
            params = {"side": side, "type": "market", "quantity": params["quantity"]}
        elif kind < 0.15:
            params = {"side": side, "type": "market", "quote_quantity": f"{rng.randint(5, 200)}.00"}
        yield rng.choice(traders), params


def expected_trades(market, orders):
    """The trades an uninterrupted engine produces for these orders in this sequence."""
    book = engine.OrderBook()
    trades = []
    for order in orders:
        for event in book.process(engine_new_order(order, market)):
            if type(event) is engine.messages.Trade:
                trades.append((event.taker_id, event.maker_id, market.tick_size * event.price, market.lot_size * event.size))
    return trades


def test_sigkill_mid_stream_loses_and_duplicates_nothing(setup_market):
    market, traders = setup_market
    # given a stream of orders waiting for the engine
    for trader, params in random_orders(traders, 600, seed=7):
        order_submit(account=trader, market="BTC-USD", **params)
    orders = list(Order.objects.order_by("id"))
    total = Command.objects.count()
    # when the engine is killed with SIGKILL part-way (small batches: many commits to land between)
    process = start_engine(BOURSE_ENGINE_BATCH="5")
    # (30 s: the engine's start, its start-up checks included, is slow on a loaded machine)
    assert wait_for(lambda: Command.objects.filter(processed=True).count() >= total // 4, timeout=30, interval=0.002)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    processed_at_kill = Command.objects.filter(processed=True).count()
    assert processed_at_kill < total, "the engine finished before the kill; the test proved nothing"
    # and restarted
    process = start_engine()
    try:
        assert wait_for(lambda: not Command.objects.filter(processed=False).exists()), stop(process)
    finally:
        log = stop(process)
    # then the fills are exactly those of an uninterrupted run
    market = Market.objects.select_related("base", "quote").get(pk=market.pk)
    actual = list(Trade.objects.order_by("id").values_list("taker_order_id", "maker_order_id", "price", "quantity"))
    assert actual == expected_trades(market, orders), log
    assert len(actual) > 50
    # and once settled, the ledger proves
    settlement_run(market.pk)
    report = reconciliation_run()
    assert report.ok, report.checks


def test_standby_takes_over_when_the_owner_dies(setup_market):
    market, (alice, *_) = setup_market
    owner = start_engine()
    first = order_submit(account=alice, market="BTC-USD", side="sell", type="limit",
                         price="100.00", quantity="0.1000", wait=10).order
    assert first.status == "open"
    standby = start_engine()
    try:
        time.sleep(1.0)  # the standby is up and waiting on the lock
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
        second = order_submit(account=alice, market="BTC-USD", side="sell", type="limit",
                              price="101.00", quantity="0.1000", wait=10).order
        assert second.status == "open", stop(standby)
    finally:
        stop(standby)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
def test_racing_submissions_with_one_client_order_id_create_one_order(setup_market):
    market, (alice, *_) = setup_market
    results, problems = [], []
    barrier = threading.Barrier(8)

    def submit():
        try:
            barrier.wait()
            results.append(order_submit(account=alice, market="BTC-USD", side="buy", type="limit",
                                        price="100.00", quantity="0.1000", client_order_id="race-1"))
        except Exception as exc:  # collected: the assertion below shows any
            problems.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert problems == []
    assert Order.objects.filter(client_order_id="race-1").count() == 1
    assert len({r.order.pk for r in results}) == 1
    assert sum(r.created for r in results) == 1
    from accounts.models import Balance

    assert Balance.objects.get(account=alice, asset_id="USD").locked == D("10.02")
