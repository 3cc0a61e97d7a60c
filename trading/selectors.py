"""Read-side queries for markets, orders and fills."""
from exchange import errors

from .models import Market


def market_list():
    return Market.objects.select_related("base", "quote")


def market_get(symbol: str) -> Market:
    try:
        return Market.objects.select_related("base", "quote").get(symbol=symbol)
    except Market.DoesNotExist:
        raise errors.NotFound(f"Market {symbol!r} does not exist.") from None
