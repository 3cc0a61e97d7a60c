"""Candles (OHLCV bars) built from a market's trades, and kept as the trades are written.

Where they are built, and why: the engine writes a batch's trades in one transaction; the
same transaction upserts the bars those trades touch (``CandleBook.record``). Every trade of
one batch carries the same ``created_at``, so a batch touches exactly one bar per interval:
six rows in ONE ``INSERT … ON CONFLICT DO UPDATE`` whatever the number of trades, computed
from the bars the runner keeps in memory (it is the market's only writer, so nothing is read
back). A bar can therefore never disagree with the trades that committed, and the
``candles:`` WebSocket channel gets its events from the same outbox row. The alternative —
aggregating trades at read time over a (market, created_at) index — costs a scan of every
trade in the range per request (a year of 1d bars reads the year's trades).

Trades written before this existed are folded in by ``candles_backfill`` when the engine
takes the market (``last_trade`` on each bar says how far it got), in chunks of their own
transactions, so a long history does not hold one giant transaction.

Bars are aligned on UTC epoch multiples of their length (``1d`` opens at 00:00 UTC); an
interval without trades has no bar. ``open_time`` is the bar's start.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

from accounts.models import MoneyNotStorable, money_storable
from exchange import wire
from exchange.pgarrays import array_literal, int_array

from .models import Candle, Market, Trade

INTERVALS: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400}
BACKFILL_CHUNK = 5000
UPDATE_FIELDS = ("high", "low", "close", "volume", "quote_volume", "trades", "last_trade")


def bar_start(moment: datetime, seconds: int) -> datetime:
    """The open time of the ``seconds``-long bar that holds ``moment`` (UTC-aligned)."""
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


@dataclass
class Bar:
    open_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trades: int
    last_trade: int

    def fold(self, other: Bar) -> None:
        """Add ``other`` (later trades of the same bar) into this one."""
        if other.high > self.high:
            self.high = other.high
        if other.low < self.low:
            self.low = other.low
        self.close = other.close
        self.volume += other.volume
        self.quote_volume += other.quote_volume
        self.trades += other.trades
        self.last_trade = other.last_trade


def minute_bars(trades) -> list[Bar]:
    """``trades`` (objects with price, quantity, sequence, created_at; in sequence order) as 1m
    bars, oldest first. A trade stamped earlier than the bar before it (the clock stepped
    back) joins that bar: bars never reopen."""
    bars: list[Bar] = []
    for trade in trades:
        start = bar_start(trade.created_at, 60)
        price, quantity = trade.price, trade.quantity
        bar = bars[-1] if bars else None
        if bar is not None and start <= bar.open_time:
            if price > bar.high:
                bar.high = price
            if price < bar.low:
                bar.low = price
            bar.close = price
            bar.volume += quantity
            bar.quote_volume += price * quantity
            bar.trades += 1
            bar.last_trade = trade.sequence
        else:
            bars.append(Bar(start, price, price, price, price, quantity, price * quantity, 1, trade.sequence))
    return bars


class CandleBook:
    """One market's newest bar per interval, as written; the runner's handle on candles."""

    def __init__(self, market: Market):
        self.market = market
        self.current: dict[str, Bar] = {}

    def load(self) -> None:
        """Read the newest bar of each interval (after ``candles_backfill``)."""
        self.current = {}
        for interval in INTERVALS:
            row = Candle.objects.filter(market=self.market, interval=interval).order_by("-open_time").first()
            if row is not None:
                self.current[interval] = Bar(row.open_time, row.open, row.high, row.low, row.close, row.volume,
                                             row.quote_volume, row.trades, row.last_trade)

    def record(self, trades: list[Trade]) -> dict[str, Bar]:
        """Fold ``trades`` (in sequence order, newer than every bar) into the bars and upsert
        the touched ones; call inside the transaction that writes the trades. Returns the
        touched bars by interval (what the ``candles`` outbox event carries)."""
        if not trades:
            return {}
        touched: dict[str, Bar] = {}
        rows: list[tuple[str, Bar]] = []
        minutes = minute_bars(trades)  # one, unless the batch's trades span minutes
        for interval, seconds in INTERVALS.items():
            bar = self.current.get(interval)
            for minute in minutes:
                start = bar_start(minute.open_time, seconds)
                if bar is not None and start <= bar.open_time:
                    bar = replace(bar)  # a copy: a failed batch must not leave the cache changed
                    bar.fold(minute)
                else:
                    if bar is not None and interval in touched:
                        rows.append((interval, bar))  # a bar the batch closed
                    bar = replace(minute, open_time=start)
                touched[interval] = bar
        rows.extend(touched.items())
        _upsert(self.market, rows)
        return touched

    def commit(self, touched: dict[str, Bar]) -> None:
        """After the batch committed: the touched bars are the newest."""
        self.current.update(touched)


_UPSERT_SQL = """
INSERT INTO {table} (market_id, "interval", open_time, "open", high, low, "close", volume, quote_volume, trades,
                     last_trade)
SELECT %s, u.* FROM unnest(%s::text[], %s::timestamptz[], %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[],
                           %s::numeric[], %s::numeric[], %s::bigint[], %s::bigint[])
AS u("interval", open_time, "open", high, low, "close", volume, quote_volume, trades, last_trade)
ON CONFLICT (market_id, "interval", open_time) DO UPDATE SET {updates}
"""


def _upsert(market: Market, bars: list[tuple[str, Bar]]) -> None:
    """Insert or overwrite ``bars`` (whole bars, computed in Python with ``Decimal``: SQLite's
    arithmetic on NUMERIC columns is binary floating point). PostgreSQL: one statement over
    arrays (``exchange.pgarrays``), the engine's batches' most frequent write after the orders."""
    if connection.vendor == "postgresql":
        for _, b in bars:
            for value in (b.open, b.high, b.low, b.close, b.volume, b.quote_volume):
                if not money_storable(value):
                    raise MoneyNotStorable(value, "candle")
        columns = [[interval for interval, _ in bars], [b.open_time.isoformat() for _, b in bars]] + [
            [getattr(b, name) for _, b in bars] for name in ("open", "high", "low", "close", "volume", "quote_volume")
        ]
        params: list[Any] = [market.pk, *(array_literal(column) for column in columns),
                  int_array(b.trades for _, b in bars), int_array(b.last_trade for _, b in bars)]
        updates = ", ".join(f'"{name}" = EXCLUDED."{name}"' for name in UPDATE_FIELDS)
        with connection.cursor() as cursor:
            cursor.execute(_UPSERT_SQL.format(table=Candle._meta.db_table, updates=updates), params)
        return
    Candle.objects.bulk_create(
        [Candle(market=market, interval=interval, open_time=b.open_time, open=b.open, high=b.high, low=b.low,
                close=b.close, volume=b.volume, quote_volume=b.quote_volume, trades=b.trades,
                last_trade=b.last_trade)
         for interval, b in bars],
        update_conflicts=True, unique_fields=("market", "interval", "open_time"), update_fields=UPDATE_FIELDS,
        batch_size=500,
    )


def candles_backfill(market: Market, chunk: int = BACKFILL_CHUNK) -> int:
    """Fold the market's trades that no bar includes yet into the bars (oldest first, ``chunk``
    trades per transaction); return how many. Run by the engine when it takes the market,
    before any batch, so it is the market's only writer of bars."""
    done = 0
    while True:
        with transaction.atomic(durable=True):
            book = CandleBook(market)
            book.load()
            after = min((b.last_trade for b in book.current.values()), default=0)
            if len(book.current) < len(INTERVALS):
                after = 0
            trades = list(
                Trade.objects.filter(market=market, sequence__gt=after).order_by("sequence")
                .only("price", "quantity", "sequence", "created_at")[:chunk]
            )
            if not trades:
                return done
            for interval, seconds in INTERVALS.items():
                # Per interval, only the trades this interval's bars do not hold yet (the
                # intervals are written together, so they differ only after a crash mid-way).
                newest = book.current.get(interval)
                fresh = [t for t in trades if newest is None or t.sequence > newest.last_trade]
                bars: dict[datetime, Bar] = {}
                for minute in minute_bars(fresh):
                    start = bar_start(minute.open_time, seconds)
                    if newest is not None and start <= newest.open_time:
                        newest.fold(minute)
                        bars[newest.open_time] = newest
                    elif start in bars:
                        bars[start].fold(minute)
                    else:
                        bars[start] = newest = replace(minute, open_time=start)
                _upsert(market, [(interval, bar) for bar in bars.values()])
            done += len(trades)
            if len(trades) < chunk:
                return done


def candle_to_wire(bar: Bar | Candle, market: Market) -> dict[str, Any]:
    q, b = market.quote.scale, market.base.scale
    return {
        "open_time": wire.timestamp(bar.open_time),
        "open": wire.money(bar.open, q),
        "high": wire.money(bar.high, q),
        "low": wire.money(bar.low, q),
        "close": wire.money(bar.close, q),
        "volume": wire.money(bar.volume, b),
        "quote_volume": wire.money(bar.quote_volume, q),
        "trades": bar.trades,
    }


def candles_payload(market: Market, bars: dict[str, Bar]) -> dict[str, Any]:
    """The ``candles`` outbox event of one batch: every touched bar, by interval."""
    return {"market": market.symbol, "candles": {interval: candle_to_wire(bar, market) for interval, bar in bars.items()}}
