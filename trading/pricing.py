"""Money arithmetic of orders: decimal <-> engine integers, maximum cost, fees, holds.

Rules (documented for integrators in docs/trading.md):
- The engine works in integer ticks (price / tick_size) and lots (quantity / lot_size); a
  quote "unit" of a market buy's budget is tick_size × lot_size.
- A market's quote asset carries at least the decimals of tick_size × lot_size, so every
  trade's notional (price × quantity) is exact in the quote asset — nothing is rounded
  between buyer and seller.
- Fees are charged in the quote asset on each fill and rounded down to the quote scale
  (never more than the rate says). The hold for a buy covers the worst case, the taker rate
  rounded up, so the rounding of many fills can never exceed what was locked.
- A market buy's ``quote_quantity`` is the most it spends including fees.
"""
from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from .models import Market, Order


def quote_quantum(market: Market) -> Decimal:
    return Decimal(1).scaleb(-market.quote.scale)


def to_ticks(market: Market, price: Decimal) -> int:
    ticks, rest = divmod(price, market.tick_size)
    if rest != 0:  # validated at submission; a tick size changed since is caught here, not by -O
        raise ValueError(f"price {price} is not a multiple of {market.symbol}'s tick size {market.tick_size}")
    return int(ticks)


def to_lots(market: Market, quantity: Decimal) -> int:
    lots, rest = divmod(quantity, market.lot_size)
    if rest != 0:
        raise ValueError(f"quantity {quantity} is not a multiple of {market.symbol}'s lot size {market.lot_size}")
    return int(lots)


def from_ticks(market: Market, ticks: int) -> Decimal:
    return market.tick_size * ticks


def from_lots(market: Market, lots: int) -> Decimal:
    return market.lot_size * lots


def unit_value(market: Market) -> Decimal:
    """The quote value of one tick × one lot (the engine's quote unit)."""
    return market.tick_size * market.lot_size


def fee(market: Market, notional: Decimal, rate: Decimal) -> Decimal:
    """The fee charged on one fill: rounded down to the quote scale."""
    return (notional * rate).quantize(quote_quantum(market), rounding=ROUND_FLOOR)


def max_fee(market: Market, notional: Decimal) -> Decimal:
    """The most a buy of this notional can be charged: taker rate, rounded up."""
    return (notional * market.taker_fee_rate).quantize(quote_quantum(market), rounding=ROUND_CEILING)


def limit_buy_need(market: Market, price: Decimal, quantity: Decimal) -> Decimal:
    """Quote a resting limit buy must keep locked for ``quantity`` still to fill at ``price``."""
    notional = price * quantity
    return notional + max_fee(market, notional)


def market_buy_budget_units(market: Market, quote_quantity: Decimal) -> int:
    """Engine quote units a market buy may spend so that notional + taker fee <= quote_quantity."""
    spendable = quote_quantity / (1 + market.taker_fee_rate)
    units = int((spendable / unit_value(market)).to_integral_value(rounding=ROUND_FLOOR))
    # Rounding the fee up could still overshoot by a quantum: step down until it fits.
    while units > 0:
        notional = unit_value(market) * units
        if notional + max_fee(market, notional) <= quote_quantity:
            break
        units -= 1
    return units


def order_hold(market: Market, *, side: str, type: str, price, quantity, quote_quantity) -> tuple[str, Decimal]:
    """The asset and amount an order locks at submission: its maximum cost."""
    if side == Order.Side.SELL:
        return market.base_id, quantity
    if type in Order.LIMIT_TYPES:
        return market.quote_id, limit_buy_need(market, price, quantity)
    return market.quote_id, quote_quantity


def required_hold(order: Order, remaining: Decimal | None) -> Decimal:
    """What an order with ``remaining`` unfilled quantity must still keep locked.

    Only a live limit order (or stop-limit) keeps anything: a sell its remaining base, a buy
    the worst-case quote of its remaining quantity. Market orders never rest; their leftovers
    are released when they close.
    """
    if order.type not in Order.LIMIT_TYPES or not remaining:
        return Decimal(0)
    if order.side == Order.Side.SELL:
        return remaining
    return limit_buy_need(order.market, order.price, remaining)
