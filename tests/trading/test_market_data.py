"""Trade numbering, candles and the book checksum, as the engine writes them.

Market BTC-USD: tick 0.01, lot 0.0001; the engine is stepped by hand.
"""
import zlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from tests.factories import AccountFactory
from tests.support import fund
from trading.candles import INTERVALS, bar_start, candles_backfill
from trading.checksum import BookChecksum, book_checksum
from trading.models import Candle, OutboxEvent, Trade
from trading.outbox.selectors import EVENT_FIELDS, expand
from trading.runner import MarketRunner
from trading.services import order_submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def maker(market):
    account = AccountFactory()
    fund(account, USD="100000", BTC="100")
    return account


@pytest.fixture
def taker(market):
    account = AccountFactory()
    fund(account, USD="100000", BTC="100")
    return account


def limit(account, side, price, quantity):
    return order_submit(account=account, market="BTC-USD", side=side, type="limit",
                        price=D(price), quantity=D(quantity)).order


def events(channel):
    """The channel's outbox events in order (a batched row holds several)."""
    return list(expand(OutboxEvent.objects.filter(channel=channel).order_by("id").values(*EVENT_FIELDS)))


def trade_burst(runner, maker, taker, prices):
    """One trade per price: the maker rests, the taker crosses it; one batch."""
    for price in prices:
        limit(maker, "sell", price, "0.1000")
        limit(taker, "buy", price, "0.1000")
    runner.step()


def test_trade_ids_rise_by_one_per_market_across_batches_and_restarts(runner, maker, taker, market):
    trade_burst(runner, maker, taker, ["100.00", "100.01"])
    trade_burst(runner, maker, taker, ["100.02"])
    # a restarted engine continues the numbering
    restarted = MarketRunner(market, "test-owner")
    restarted.rebuild()
    trade_burst(restarted, maker, taker, ["100.03"])
    assert list(Trade.objects.order_by("id").values_list("sequence", flat=True)) == [1, 2, 3, 4]
    assert [e["payload"]["trade_id"] for e in events("trades")] == ["1", "2", "3", "4"]
    assert {e["payload"]["trade_id"] for e in events("fills")} == {"1", "2", "3", "4"}


def test_candles_are_written_with_the_batch_for_every_interval(runner, maker, taker, market):
    trade_burst(runner, maker, taker, ["100.00", "101.50", "99.25", "100.75"])
    trade = Trade.objects.first()
    rows = {c.interval: c for c in Candle.objects.filter(market=market)}
    assert set(rows) == set(INTERVALS)
    for interval, seconds in INTERVALS.items():
        bar = rows[interval]
        assert bar.open_time == bar_start(trade.created_at, seconds)
        assert (bar.open, bar.high, bar.low, bar.close) == (D("100"), D("101.5"), D("99.25"), D("100.75"))
        assert (bar.volume, bar.quote_volume, bar.trades, bar.last_trade) == (D("0.4"), D("40.15"), 4, 4)
    # the next batch folds into the same bars
    trade_burst(runner, maker, taker, ["102.00"])
    bar = Candle.objects.get(market=market, interval="1d")
    assert (bar.high, bar.close, bar.trades, bar.volume, bar.last_trade) == (D("102"), D("102"), 5, D("0.5"), 5)
    event = OutboxEvent.objects.filter(channel="candles").order_by("-id").first()
    assert set(event.payload["candles"]) == set(INTERVALS)
    assert event.payload["candles"]["1m"]["trades"] == Candle.objects.get(market=market, interval="1m").trades


def test_backfill_rebuilds_bars_from_trade_history(runner, maker, taker, market):
    # given trades spread over three hours (their times moved back), and no bars
    trade_burst(runner, maker, taker, ["100.00", "101.00", "102.00", "103.00", "104.00", "105.00"])
    start = datetime(2026, 11, 23, 17, 58, 30, tzinfo=UTC)
    offsets = [0, 20, 70, 400, 3700, 7300]  # seconds after start
    for trade, offset in zip(Trade.objects.order_by("sequence"), offsets, strict=True):
        Trade.objects.filter(pk=trade.pk).update(created_at=start + timedelta(seconds=offset))
    Candle.objects.all().delete()
    # when the engine takes the market (chunks of 4 trades, to cross a chunk boundary)
    assert candles_backfill(market, chunk=4) == 6
    # then the bars are those of the history
    def bars(interval):
        return [(b.open_time.astimezone(UTC).strftime("%H:%M"), b.open, b.close, b.trades)
                for b in Candle.objects.filter(market=market, interval=interval).order_by("open_time")]
    assert bars("1m") == [("17:58", D(100), D(101), 2), ("17:59", D(102), D(102), 1), ("18:05", D(103), D(103), 1),
                          ("19:00", D(104), D(104), 1), ("20:00", D(105), D(105), 1)]
    assert bars("5m") == [("17:55", D(100), D(102), 3), ("18:05", D(103), D(103), 1), ("19:00", D(104), D(104), 1),
                          ("20:00", D(105), D(105), 1)]
    assert bars("1h") == [("17:00", D(100), D(102), 3), ("18:00", D(103), D(103), 1), ("19:00", D(104), D(104), 1),
                          ("20:00", D(105), D(105), 1)]
    assert bars("1d") == [("00:00", D(100), D(105), 6)]
    # and running it again changes nothing; the engine goes on from there
    assert candles_backfill(market) == 0
    runner.rebuild()
    trade_burst(runner, maker, taker, ["99.00"])
    days = Candle.objects.filter(market=market, interval="1d").order_by("open_time")
    assert [(d.trades, d.last_trade) for d in days] == [(6, 6), (1, 7)]  # today's bar, after the history's


def test_book_checksum_definition():
    # interleaved bid/ask levels; the longer side goes on alone
    bids = [["100.00", "1.5"], ["99.00", "2.0"], ["98.00", "0.1"]]
    asks = [["101.00", "0.3"]]
    assert book_checksum(bids, asks) == zlib.crc32(b"100.00:1.5:101.00:0.3:99.00:2.0:98.00:0.1")
    assert book_checksum([], []) == zlib.crc32(b"")
    deep = [[f"{p}.00", "1"] for p in range(100, 60, -1)]
    assert book_checksum(deep, []) == book_checksum(deep[:25], [])


def test_engine_checksum_matches_the_definition_after_every_update(runner, maker, taker, market):
    # levels beyond the top 25 and inside it, then a sweep that brings hidden levels up
    for i in range(35):
        limit(maker, "sell", f"{101 + i:.2f}", "0.1000")
        limit(maker, "buy", f"{99 - i * 0.5:.2f}", "0.1000")
    limit(maker, "sell", "150.00", "0.2000")  # beyond the top 25: the checksum stays
    limit(taker, "buy", "110.00", "0.5500")  # sweeps five levels and part of a sixth
    runner.step()
    updates = sorted(events("book"), key=lambda e: e["sequence"])
    assert len(updates) == 72
    book = {"bids": {}, "asks": {}}
    for event in updates:
        for side in ("bids", "asks"):
            for price, quantity in event["payload"][side]:
                if D(quantity) == 0:
                    book[side].pop(price, None)
                else:
                    book[side][price] = quantity
        bids = sorted(book["bids"].items(), key=lambda lv: D(lv[0]), reverse=True)
        asks = sorted(book["asks"].items(), key=lambda lv: D(lv[0]))
        assert event["payload"]["checksum"] == book_checksum(bids, asks), event["sequence"]
    assert updates[-2]["payload"]["checksum"] == updates[-3]["payload"]["checksum"]  # the level at 150


def test_checksum_formats_units_as_the_wire_does():
    class Book:
        def depth(self, n):
            return [(12345, 7)], [(12346, 100000000)]

    checksum = BookChecksum(Book(), D("0.01"), 6, D("0.0001"), 8)
    assert checksum.after([]) == zlib.crc32(b"123.450000:0.00070000:123.460000:10000.00000000")
    # then changes apply to the held levels without reading the book again
    assert checksum.after([(True, 12345, 9), (True, 12340, 1)]) == zlib.crc32(
        b"123.450000:0.00090000:123.460000:10000.00000000:123.400000:0.00010000")
    assert checksum.after([(True, 12345, 0)]) == zlib.crc32(b"123.400000:0.00010000:123.460000:10000.00000000")
    odd = BookChecksum(Book(), D("0.5"), 0, D("3"), 0)  # a step that is no whole quantum: Decimal path
    assert odd.after([]) == zlib.crc32(b"6172:21:6173:300000000")


def test_incremental_checksum_equals_the_definition_over_random_books():
    """The engine's incremental form against the definition on a pure book: adds, sweeps and
    cancels over 300 price levels, so levels enter and leave the held 50 and the top 25."""
    import random

    import matching as engine
    from matching import messages as m

    rng = random.Random(2026)
    book = engine.OrderBook()
    checksum = BookChecksum(book, D("0.01"), 2, D("1"), 0)
    live, next_id = [], 1
    for _ in range(3000):
        if live and rng.random() < 0.3:
            command = m.Cancel(live.pop(rng.randrange(len(live))))
        else:
            side = rng.choice([m.BUY, m.SELL])
            near = rng.random() < 0.05  # crossing: sweeps levels of the other side
            price = (rng.randint(150, 300) if near else rng.randint(1, 150)) if side == m.BUY else \
                (rng.randint(1, 150) if near else rng.randint(150, 300))
            size = rng.randint(50, 400) if near else rng.randint(1, 9)  # crossing orders sweep many levels
            command = m.NewOrder(next_id, rng.randint(1, 5), side, m.LIMIT, price, size, m.GTC, False,
                                 m.CANCEL_NEWEST, None)
            live.append(next_id)
            next_id += 1
        events = book.process(command)
        changes = [(e.side == m.BUY, e.price, e.total) for e in events if type(e) is m.LevelUpdate]
        live = [oid for oid in live if oid in book]
        if not changes:
            continue
        bids, asks = book.depth(25)
        expected = book_checksum([[f"{D(p) / 100:.2f}", str(q)] for p, q in bids],
                                 [[f"{D(p) / 100:.2f}", str(q)] for p, q in asks])
        assert checksum.after(changes) == expected
