"""What the WebSocket transport renders from the trading selectors: book snapshots and tickers
in their frame shapes. Stream replays and gap fills read the outbox (``trading.outbox.selectors``)."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from exchange import wire

from .. import selectors as trading_selectors
from ..candles import INTERVALS
from ..checksum import book_checksum
from ..representations import ticker_to_wire

if TYPE_CHECKING:
    from ..models import Market

MAX_SYMBOL_LENGTH = 33  # the column's size: a longer name is no market, and is not queried


# Channel names are client input: a flood of subscribes naming markets (real or not) would
# otherwise cost a database query each. Look-ups are cached per process, misses included,
# for a short time (a new market or a status change shows within MARKET_CACHE_S); the cache
# is bounded, and cleared when full.
MARKET_CACHE_S = 5.0
MARKET_CACHE_SIZE = 4096
_market_cache: dict[str, tuple[float, Market | None]] = {}


def market_by_symbol(symbol: str) -> Market | None:
    now = time.monotonic()
    hit = _market_cache.get(symbol)
    if hit is not None and hit[0] > now:
        return hit[1]
    market = trading_selectors.market_find(symbol) if len(symbol) <= MAX_SYMBOL_LENGTH else None
    if len(_market_cache) >= MARKET_CACHE_SIZE:
        _market_cache.clear()
    _market_cache[symbol] = (now + MARKET_CACHE_S, market)
    return market


def market_cache_clear() -> None:
    _market_cache.clear()


def market_by_id(market_id: int) -> Market:
    return trading_selectors.market_by_id(market_id)


def book_snapshot(market: Market) -> dict:
    """The whole book at the engine's persisted sequence (the REST book, every level)."""
    book = trading_selectors.book_snapshot(market)
    q, b = market.quote.scale, market.base.scale
    bids = [[wire.money(p, q), wire.money(s, b)] for p, s in book["bids"]]
    asks = [[wire.money(p, q), wire.money(s, b)] for p, s in book["asks"]]
    return {"market": market.symbol, "sequence": book["sequence"], "bids": bids, "asks": asks,
            "checksum": book_checksum(bids, asks)}


def candle_interval(name: str) -> str | None:
    """The interval of a ``candles:`` channel's tail (``1m``…), or None."""
    return name if name in INTERVALS else None


def candle_latest(market: Market, interval: str) -> dict | None:
    """The newest bar of ``interval`` as the ``candles:`` channel sends it, or None."""
    bars = trading_selectors.candle_list(market, interval, limit=1)
    return bars[-1] if bars else None


def ticker(market: Market) -> dict:
    """The ticker exactly as ``GET /markets/{symbol}/ticker`` renders it."""
    return ticker_to_wire(market, trading_selectors.ticker(market))


