"""Orders, fills and trades as every transport shows them (REST bodies, WebSocket frames,
the outbox). One function per object, so the transports cannot drift apart."""
from exchange import wire

from .models import Fill, Market, Order, Trade


def order_to_wire(order: Order, market: Market | None = None) -> dict:
    market = market or order.market
    base, quote = market.base.scale, market.quote.scale
    remaining = order.remaining_quantity
    average = order.average_price
    return {
        "order_id": str(order.pk),
        "client_order_id": order.client_order_id,
        "market": market.symbol,
        "side": order.side,
        "type": order.type,
        "time_in_force": order.time_in_force,
        "post_only": order.post_only,
        "stp": order.stp,
        "price": wire.money(order.price, quote),
        "quantity": wire.money(order.quantity, base),
        "quote_quantity": wire.money(order.quote_quantity, quote),
        "stop_price": wire.money(order.stop_price, quote),
        "expire_time": wire.timestamp(order.expire_time),
        "filled_quantity": wire.money(order.filled_quantity, base),
        "remaining_quantity": wire.money(remaining, base),
        "average_price": wire.money(average, quote) if average is not None else None,
        "status": order.status,
        "reject_reason": order.reject_reason or None,
        "cancel_reason": order.cancel_reason or None,
        "created_at": wire.timestamp(order.created_at),
        "updated_at": wire.timestamp(order.updated_at),
    }


def fill_to_wire(fill: Fill, market: Market, client_order_id: str | None) -> dict:
    return {
        "fill_id": str(fill.pk),
        "trade_id": str(fill.trade_id),
        "order_id": str(fill.order_id),
        "client_order_id": client_order_id,
        "market": market.symbol,
        "side": fill.side,
        "price": wire.money(fill.price, market.quote.scale),
        "quantity": wire.money(fill.quantity, market.base.scale),
        "fee": wire.money(fill.fee, market.quote.scale),
        "fee_asset": fill.fee_asset_id,
        "liquidity": fill.liquidity,
        "created_at": wire.timestamp(fill.created_at),
        "settled": fill.settled,
    }


def trade_to_wire(trade: Trade, market: Market) -> dict:
    return {
        "trade_id": str(trade.pk),
        "market": market.symbol,
        "price": wire.money(trade.price, market.quote.scale),
        "quantity": wire.money(trade.quantity, market.base.scale),
        "taker_side": trade.taker_side,
        "created_at": wire.timestamp(trade.created_at),
    }


def levels_to_wire(levels, market: Market) -> list[list[str]]:
    """``[(price, quantity)]`` decimals -> ``[["price", "quantity"]]`` strings."""
    return [[wire.money(p, market.quote.scale), wire.money(q, market.base.scale)] for p, q in levels]


def ticker_to_wire(market: Market, data: dict) -> dict:
    """``trading.selectors.ticker`` as REST and the ``ticker:`` WebSocket channel show it."""
    q, b = market.quote.scale, market.base.scale
    return {
        "market": market.symbol,
        "last_price": wire.money(data["last_price"], q),
        "last_trade_at": wire.timestamp(data["last_trade_at"]),
        "best_bid": wire.money(data["best_bid"], q),
        "best_ask": wire.money(data["best_ask"], q),
        "open_24h": wire.money(data["open_24h"], q),
        "high_24h": wire.money(data["high_24h"], q),
        "low_24h": wire.money(data["low_24h"], q),
        "volume_24h": wire.money(data["volume_24h"], b),
        "quote_volume_24h": wire.money(data["quote_volume_24h"], q),
        "sequence": data["sequence"],
    }


def cancel_after_to_wire(state) -> dict:
    """A dead-man switch's state (``trading.services.DeadManState``), as ``POST /cancel-after``
    and the WebSocket op ``cancel_after`` answer it."""
    return {"current_time": wire.timestamp(state.current_time), "trigger_time": wire.timestamp(state.trigger_time)}
