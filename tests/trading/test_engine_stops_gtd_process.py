"""Stops and good-till-date orders through a real engine process killed with SIGKILL: the
engine dies with stop orders pending and gtd orders resting, stays down until the gtd orders
are due, then runs a stream of crossing orders (which trigger the stops) and is killed again
mid-stream. The result must be exactly that of one uninterrupted run of the pure core over
the same commands: the due gtd orders cancelled `expired` before anything of the stream,
the stops triggered in the same order, the same trades."""
import os
import random
import signal
import time
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.utils import timezone

import matching as engine
from tests.factories import AccountFactory, AssetFactory, MarketFactory
from tests.support import fund
from tests.trading.test_engine_process import start_engine, stop, wait_for
from trading.models import Command, Market, Order, Trade
from trading.reconciliation import reconciliation_run
from trading.runner import engine_new_order, engine_time
from trading.services import order_submit
from trading.settlement import settlement_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

GTD_DELAY_S = 30  # long enough for the first phase to run on a loaded machine, short enough to wait for


def submit(trader, **params):
    return order_submit(account=trader, market="BTC-USD", **params).order


def first_phase(traders, rng, expire_time):
    """A non-crossing book (a third of it gtd, due at ``expire_time``) and stop orders on
    both sides, none of which any first-phase trade can trigger (there is none)."""
    for i in range(60):
        trader = rng.choice(traders)
        side = "buy" if i % 2 else "sell"
        price = D(rng.randint(9900, 9999) if side == "buy" else rng.randint(10001, 10100)) / 100
        extra = {"time_in_force": "gtd", "expire_time": expire_time} if i % 3 == 0 else {}
        submit(trader, side=side, type="limit", price=f"{price:.2f}", quantity=f"{D(rng.randint(100, 3000)) / 10000:.4f}",
               **extra)
    far = timezone.now() + timedelta(hours=1)
    for i in range(24):
        trader = rng.choice(traders)
        side = rng.choice(["buy", "sell"])
        stop_price = D(rng.randint(10005, 10080) if side == "buy" else rng.randint(9920, 9995)) / 100
        quantity = f"{D(rng.randint(100, 1500)) / 10000:.4f}"
        extra = {"time_in_force": "gtd", "expire_time": far} if i % 4 == 0 else {}
        if i % 3 == 0:
            if side == "buy":
                submit(trader, side=side, type="stop_market", stop_price=f"{stop_price:.2f}",
                       quote_quantity=f"{rng.randint(20, 150)}.00", **extra)
            else:
                submit(trader, side=side, type="stop_market", stop_price=f"{stop_price:.2f}", quantity=quantity, **extra)
        else:
            limit = stop_price + (D("0.30") if side == "buy" else D("-0.30"))
            submit(trader, side=side, type="stop_limit", stop_price=f"{stop_price:.2f}", price=f"{limit:.2f}",
                   quantity=quantity, **extra)


def second_phase(traders, rng, count):
    for _ in range(count):
        side = rng.choice(["buy", "sell"])
        price = D(rng.randint(9900, 10100)) / 100
        params = {"side": side, "type": "limit", "price": f"{price:.2f}",
                  "quantity": f"{D(rng.randint(100, 2000)) / 10000:.4f}"}
        if rng.random() < 0.1:
            params["time_in_force"] = "ioc"
        submit(rng.choice(traders), **params)


def expected(market, first, due_at, second):
    """Trades and final statuses of one uninterrupted run of the pure core."""
    book = engine.OrderBook()
    trades, status = [], {}
    for events in [book.process(engine_new_order(o, market)) for o in first] + [
        book.process(engine.Expire(due_at))
    ] + [book.process(engine_new_order(o, market)) for o in second]:
        for event in events:
            if type(event) is engine.Trade:
                trades.append((event.taker_id, event.maker_id, market.tick_size * event.price,
                               market.lot_size * event.size))
            elif type(event) is engine.Cancelled:
                status[event.order_id] = event.reason
    return trades, status, {s.order_id for s in book.stop_orders()}


def test_sigkill_with_stops_pending_and_gtds_due_replays_deterministically():
    usd, btc = AssetFactory(code="USD", scale=6), AssetFactory(code="BTC", scale=8)
    market = MarketFactory(base=btc, quote=usd)
    traders = [AccountFactory() for _ in range(5)]
    for trader in traders:
        fund(trader, USD="1000000", BTC="1000")
    rng = random.Random(18)
    expire_time = timezone.now() + timedelta(seconds=GTD_DELAY_S)
    first_phase(traders, rng, expire_time)
    first = list(Order.objects.order_by("id"))

    # given an engine that took the first phase (stops untriggered, gtd orders resting) ...
    process = start_engine()
    try:
        assert wait_for(lambda: not Command.objects.filter(processed=False).exists(), timeout=60), stop(process)
        assert Order.objects.filter(status="untriggered").count() == 24
        assert timezone.now() < expire_time, "the first phase outlived its gtd orders; the test proved nothing"
    finally:
        # ... and died
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    # when the stream arrives while no engine runs, and the gtd orders fall due
    second_phase(traders, rng, 400)
    second = list(Order.objects.filter(pk__gt=first[-1].pk).order_by("id"))
    total = Command.objects.count()
    while timezone.now() <= expire_time:
        time.sleep(0.1)
    # and an engine starts, is killed part-way through the stream (small batches), and restarts
    process = start_engine(BOURSE_ENGINE_BATCH="5")
    assert wait_for(lambda: Command.objects.filter(processed=True).count() >= len(first) + len(second) // 4,
                    interval=0.002, timeout=60)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert Command.objects.filter(processed=True).count() < total, "the engine finished before the kill"
    process = start_engine()
    try:
        assert wait_for(lambda: not Command.objects.filter(processed=False).exists(), timeout=60), stop(process)
    finally:
        log = stop(process)

    # then everything is exactly as one uninterrupted run: the due gtd orders expired first
    market = Market.objects.select_related("base", "quote").get(pk=market.pk)
    trades, cancelled, untriggered = expected(market, first, engine_time(expire_time) + 1, second)
    actual = list(Trade.objects.order_by("id").values_list("taker_order_id", "maker_order_id", "price", "quantity"))
    assert actual == trades, log
    assert len(actual) > 50
    orders = {o.pk: o for o in Order.objects.all()}
    gtd = [o for o in first if o.time_in_force == "gtd" and o.stop_price is None]
    assert gtd and all((orders[o.pk].status, orders[o.pk].cancel_reason, orders[o.pk].filled_quantity)
                       == ("cancelled", "expired", 0) for o in gtd)
    assert {pk for pk, o in orders.items() if o.status == "untriggered"} == untriggered
    triggered = [o for o in first if o.stop_price is not None and o.pk not in untriggered]
    assert len(triggered) >= 5  # the stream reached stops on both sides
    assert {pk: o.cancel_reason for pk, o in orders.items() if o.status == "cancelled"} == {
        pk: reason for pk, reason in cancelled.items() if orders[pk].status == "cancelled"}
    # and once settled, the ledger proves
    settlement_run(market.pk)
    report = reconciliation_run()
    assert report.ok, report.checks
