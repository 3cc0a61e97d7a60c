"""ExecutionReports are exact: AvgPx on every Trade report is the quantity-weighted average
of the fills so far; TimeInForce Day is refused rather than silently GTC; the report reader
never skips a batch whose commit took long."""
import asyncio
import threading
import time
from decimal import Decimal as D

import pytest
from django.db import connection, connections, transaction

from tests.factories import AccountFactory, AssetFactory, MarketFactory
from trading.fix import application, reports
from trading.fix.codec import FieldError, Message
from trading.fix.reader import OutboxTail, _prior_notional
from trading.models import OutboxEvent

from .support import new_order


def order_payload(order_id="7", **extra):
    return {"order_id": order_id, "client_order_id": "c-7", "market": "BTC-USD", "side": "buy", "type": "limit",
            "price": "96.000000", "quantity": "0.00030000", "quote_quantity": None, "time_in_force": "gtc",
            "post_only": False, "status": "filled", "filled_quantity": "0.00030000", "created_at": "", **extra}


def fill_payload(fill_id, price, quantity="0.00010000", order_id="7"):
    return {"fill_id": str(fill_id), "order_id": order_id, "price": price, "quantity": quantity, "fee": "0",
            "fee_asset": "USD", "liquidity": "taker"}


def avg_px(messages):
    return [dict(fields)[6] for msg_type, fields in messages if msg_type == "8" and dict(fields)[150] == "F"]


def test_avg_px_of_each_trade_report_is_the_average_of_the_fills_so_far():
    # three fills in one batch; the order's final average 95.013333… is rounded on the wire
    fills = [fill_payload(1, "95.010000"), fill_payload(2, "95.010000"), fill_payload(3, "95.020000")]
    out = reports.batch_reports([order_payload(average_price="95.013333")], fills, account_id=1, cancel_ids={})
    # before: 95.009999 for the first fill (rebuilt from the rounded final average)
    assert avg_px(out) == ["95.010000", "95.010000", "95.013333"]


def test_avg_px_counts_the_fills_of_earlier_batches_exactly():
    # 0.0001 @ 95.01 filled in an earlier batch (fill 1); this batch fills 0.0002 @ 95.02
    history = {7: [(1, D("95.01") * D("0.0001")), (2, D("95.02") * D("0.0002"))]}
    batch_fills = [fill_payload(2, "95.020000", quantity="0.00020000")]
    prior = _prior_notional(batch_fills, history)
    assert prior == {"7": D("0.009501")}
    out = reports.batch_reports([order_payload(average_price="95.016667")], batch_fills, account_id=1,
                                cancel_ids={}, prior_notional=prior)
    assert avg_px(out) == ["95.016667"]  # (95.01 × 1 + 95.02 × 2) / 3


def _message(fields):
    return Message(fields=[(35, "D")] + [(tag, str(value)) for tag, value in fields if value is not None])


@pytest.mark.django_db
def test_time_in_force_day_is_refused_not_taken_as_gtc():
    account = AccountFactory()
    with pytest.raises(FieldError) as refused:
        application.new_order_single(account, _message(new_order("day-1", tif="0")))
    assert refused.value.tag == 59 and "Day" in refused.value.text
    assert reports.TIF_FROM_FIX.get("0") is None


class _Session:
    def __init__(self, key):
        self.key, self.min_event_id, self.closing = key, 0, False
        self.cancel_ids, self.acked, self.logon_at, self.replace_ids = {}, set(), "", {}
        self.sent = []

    def deliver_reports(self, messages):
        self.sent.extend(messages)


class _Host:
    def __init__(self):
        self.by_account = {}

    async def call(self, fn, *args, **kwargs):
        def run():
            try:
                return fn(*args, **kwargs)
            finally:
                connections.close_all()

        return await asyncio.to_thread(run)


@pytest.mark.django_db(transaction=True)
def test_the_report_reader_does_not_skip_a_batch_whose_commit_took_long(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("needs two writers in flight at once (PostgreSQL); SQLite has one writer at a time")
    usd = AssetFactory(code="USD", scale=6)
    slow_market = MarketFactory(base=AssetFactory(code="BTC", scale=8), quote=usd)
    busy_market = MarketFactory(base=AssetFactory(code="ETH", scale=8), quote=usd)
    account = AccountFactory()
    host, session = _Host(), _Session(key=type("K", (), {"key_id": "bk_test"})())
    host.by_account[account.pk] = {session}
    tail = OutboxTail(host)
    monkeypatch.setattr(OutboxTail, "SETTLE_S", 0.0, raising=False)  # the old time-based floor, at once

    def event(market, order_id):
        return OutboxEvent(market=market, account=account, channel="orders",
                           payload=order_payload(order_id, market=market.symbol, status="open",
                                                 filled_quantity="0", average_price=None))

    started, release = threading.Event(), threading.Event()

    def slow_engine_batch():  # takes its ids now, commits late
        try:
            with transaction.atomic():
                OutboxEvent.objects.bulk_create([event(slow_market, "1")])
                started.set()
                release.wait(10)
        finally:
            connections.close_all()

    async def scenario():
        tail.start_floor = tail.high_water = await host.call(lambda: 0)
        slow = threading.Thread(target=slow_engine_batch)
        slow.start()
        assert started.wait(10)
        await host.call(lambda: OutboxEvent.objects.bulk_create([event(busy_market, "2")]))
        for _ in range(3):  # the busy market moves on; time passes
            await tail._poll()
            time.sleep(0.05)
        release.set()
        await asyncio.to_thread(slow.join, 10)
        await tail._poll()

    asyncio.run(scenario())
    reported = [dict(fields)[37] for msg_type, fields in session.sent if msg_type == "8"]
    assert sorted(reported) == ["1", "2"]  # before: order 1's New never came


def test_a_market_buy_by_cash_order_qty_reports_consistent_leaves_and_status():
    order = order_payload(type="market", price=None, quantity=None, quote_quantity="30.000000",
                          status="filled", filled_quantity="0.00030000", average_price="95.013333",
                          time_in_force="ioc")
    fills = [fill_payload(1, "95.010000"), fill_payload(2, "95.010000"), fill_payload(3, "95.020000")]
    out = reports.batch_reports([order], fills, account_id=1, cancel_ids={})
    trades = [dict(f) for t, f in out if t == "8" and dict(f)[150] == "F"]
    # before: OrdStatus 1 with LeavesQty 0 on the first two
    assert [(t[39], t[151]) for t in trades] == [("1", "29.990499"), ("1", "29.980998"), ("2", "0")]

    no_liquidity = {**order, "status": "cancelled", "cancel_reason": "market_no_liquidity"}
    out = reports.batch_reports([no_liquidity], fills[:1], account_id=1, cancel_ids={})
    statuses = [(dict(f)[150], dict(f)[39], dict(f)[151]) for t, f in out if t == "8"]
    assert statuses[-2:] == [("F", "1", "29.990499"), ("4", "4", "0")]
