"""What the WebSocket transport renders from the trading selectors: book snapshots and tickers
in their frame shapes. Stream replays and gap fills read the outbox (``trading.outbox.selectors``)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from exchange import wire

from .. import selectors as trading_selectors

if TYPE_CHECKING:
    from ..models import Market
from ..representations import ticker_to_wire


def market_by_symbol(symbol: str) -> Market | None:
    return trading_selectors.market_find(symbol)


def market_by_id(market_id: int) -> Market:
    return trading_selectors.market_by_id(market_id)


def book_snapshot(market: Market) -> dict:
    """The whole book at the engine's persisted sequence (the REST book, every level)."""
    book = trading_selectors.book_snapshot(market)
    q, b = market.quote.scale, market.base.scale
    return {
        "market": market.symbol,
        "sequence": book["sequence"],
        "bids": [[wire.money(p, q), wire.money(s, b)] for p, s in book["bids"]],
        "asks": [[wire.money(p, q), wire.money(s, b)] for p, s in book["asks"]],
    }


def ticker(market: Market) -> dict:
    """The ticker exactly as ``GET /markets/{symbol}/ticker`` renders it."""
    return ticker_to_wire(market, trading_selectors.ticker(market))


