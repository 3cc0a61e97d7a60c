"""Market filters: check a price and quantity against a market's rules.

Each failure names the filter (``tick_size``, ``lot_size``, ``min_quantity``,
``min_notional``, and the market's bounds ``max_price``, ``max_quantity``, ``max_notional``)
and the allowed value, so a client can correct the request without
reading docs. All failures of one request are reported together.
"""
from decimal import Context, Decimal

from exchange import errors

from .models import Market


def _plain(value: Decimal) -> str:
    """A decimal as a plain string without exponent or trailing zeros ("0.01", "1")."""
    return format(value.normalize(), "f")


# Wide enough for any value the request fields let through (38 digits, 18 places), so a
# remainder or quantize never fails on the default 28-digit context.
_EXACT = Context(prec=100)


def _is_multiple(value: Decimal, step: Decimal) -> bool:
    return _EXACT.remainder(value, step) == 0


def _bound_error(field: str, code: str, limit: Decimal, what: str = "") -> dict:
    allowed = _plain(limit)
    return {"field": field, "code": code, "message": f"{what or field} must be at most {allowed}", "allowed": allowed}


def price_errors(market: Market, price: Decimal, field: str = "price") -> list[dict]:
    if price <= 0:
        return [{"field": field, "code": "invalid", "message": f"{field} must be positive"}]
    if price > market.price_limit:
        return [_bound_error(field, "max_price", market.price_limit)]
    if not _is_multiple(price, market.tick_size):
        tick = _plain(market.tick_size)
        return [
            {
                "field": field,
                "code": "tick_size",
                "message": f"{field} must be a multiple of {tick}",
                "allowed": tick,
            }
        ]
    return []


def quantity_errors(market: Market, quantity: Decimal, field: str = "quantity") -> list[dict]:
    if quantity <= 0:
        return [{"field": field, "code": "invalid", "message": f"{field} must be positive"}]
    if quantity > market.quantity_limit:
        return [_bound_error(field, "max_quantity", market.quantity_limit)]
    problems = []
    if not _is_multiple(quantity, market.lot_size):
        lot = _plain(market.lot_size)
        problems.append(
            {"field": field, "code": "lot_size", "message": f"{field} must be a multiple of {lot}", "allowed": lot}
        )
    if quantity < market.min_quantity:
        minimum = _plain(market.min_quantity)
        problems.append(
            {
                "field": field,
                "code": "min_quantity",
                "message": f"{field} must be at least {minimum}",
                "allowed": minimum,
            }
        )
    return problems


def notional_errors(market: Market, notional: Decimal, field: str) -> list[dict]:
    if notional > market.notional_limit:
        what = field if field == "quote_quantity" else "price × quantity"
        return [_bound_error(field, "max_notional", market.notional_limit, what)]
    if notional < market.min_notional:
        minimum = _plain(market.min_notional)
        return [
            {
                "field": field,
                "code": "min_notional",
                "message": f"price × quantity must be at least {minimum} {market.quote_id}",
                "allowed": minimum,
            }
        ]
    return []


def market_check_limit(market: Market, *, price: Decimal, quantity: Decimal) -> None:
    """Raise ``ValidationError`` listing every filter a limit order's price/quantity fails."""
    problems = price_errors(market, price) + quantity_errors(market, quantity)
    if not problems:
        problems = notional_errors(market, price * quantity, "quantity")
    if problems:
        raise errors.ValidationError("; ".join(p["message"] for p in problems), errors=problems)


def market_check_quantity(market: Market, *, quantity: Decimal, field: str = "quantity") -> None:
    """Raise ``ValidationError`` if a quantity fails the lot-size or minimum-quantity filter."""
    problems = quantity_errors(market, quantity, field)
    if problems:
        raise errors.ValidationError("; ".join(p["message"] for p in problems), errors=problems)


def market_check_quote_quantity(market: Market, *, quote_quantity: Decimal) -> None:
    """Raise ``ValidationError`` if a market buy's quote budget is malformed or too small."""
    field = "quote_quantity"
    problems = []
    if quote_quantity <= 0:
        problems.append({"field": field, "code": "invalid", "message": f"{field} must be positive"})
    elif quote_quantity > market.notional_limit:
        problems = notional_errors(market, quote_quantity, field)
    elif quote_quantity != quote_quantity.quantize(market.quote.quantum, context=_EXACT):
        problems.append(
            {
                "field": field,
                "code": "precision",
                "message": f"{field} has at most {market.quote.scale} decimal places",
                "allowed": str(market.quote.scale),
            }
        )
    else:
        problems = notional_errors(market, quote_quantity, field)
    if problems:
        raise errors.ValidationError("; ".join(p["message"] for p in problems), errors=problems)
