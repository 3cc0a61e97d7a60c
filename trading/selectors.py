"""Read-side queries for markets, market data, orders, fills and positions."""
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from accounts.models import Asset
from exchange import errors
from exchange.syntax import parse_id

from .candles import candle_to_wire
from .models import Candle, EngineState, Fill, Market, Order, Trade


def asset_list():
    return Asset.objects.order_by("code")


def market_list():
    return Market.objects.select_related("base", "quote")


def market_find(symbol: str) -> Market | None:
    """The market called ``symbol`` with its assets, or None."""
    return Market.objects.select_related("base", "quote").filter(symbol=symbol).first()


def market_by_id(market_id: int) -> Market:
    return Market.objects.select_related("base", "quote").get(pk=market_id)


def market_get(symbol: str) -> Market:
    try:
        return Market.objects.select_related("base", "quote").get(symbol=symbol)
    except Market.DoesNotExist:
        raise errors.NotFound(f"Market {symbol!r} does not exist.") from None


# --- market data ----------------------------------------------------------------------------
MAX_BOOK_DEPTH = 1000


def book_snapshot(market: Market, depth: int | None = None) -> dict:
    """The market's level-2 book as persisted by the engine, with its sequence.

    Levels and sequence come from ONE statement (one snapshot on both databases), so the
    book is exactly the engine's book after batch ``sequence`` — what a WebSocket client
    holding the snapshot plus updates up to that sequence has.
    """
    order_table, state_table = Order._meta.db_table, EngineState._meta.db_table
    sql = (
        f"SELECT 'S', NULL, NULL, book_sequence FROM {state_table} WHERE market_id = %s "
        f"UNION ALL SELECT side, price, quantity, filled_quantity FROM {order_table} "
        f"WHERE market_id = %s AND status IN ('open', 'partially_filled')"
    )
    levels: dict[str, defaultdict[Decimal, Decimal]] = {"buy": defaultdict(Decimal), "sell": defaultdict(Decimal)}
    sequence = 0
    with connection.cursor() as cursor:
        cursor.execute(sql, [market.pk, market.pk])
        for side, price, quantity, filled in cursor.fetchall():
            if side == "S":
                sequence = int(filled)
                continue
            # Summed in Python with Decimal: SQLite's SUM is binary floating point.
            levels[side][Decimal(str(price))] += Decimal(str(quantity)) - Decimal(str(filled))
    bids = sorted(levels["buy"].items(), reverse=True)
    asks = sorted(levels["sell"].items())
    if depth is not None:
        bids, asks = bids[:depth], asks[:depth]
    return {"sequence": sequence, "bids": bids, "asks": asks}


def trade_list(market: Market):
    return Trade.objects.filter(market=market)


def ticker_list() -> list[tuple[Market, dict]]:
    """Every market with its ticker (``ticker``), by symbol."""
    return [(market, ticker(market)) for market in market_list().order_by("symbol")]


MAX_CANDLES = 1000


def candle_list(market: Market, interval: str, *, start=None, end=None, limit: int = 500) -> list[dict]:
    """Up to ``limit`` bars of ``interval`` whose ``open_time`` lies in ``[start, end]``, oldest
    first, as the wire shows them: from ``start`` onwards when it is given, else the newest
    ``limit`` bars up to ``end``."""
    bars = Candle.objects.filter(market=market, interval=interval)
    if start is not None:
        bars = bars.filter(open_time__gte=start)
    if end is not None:
        bars = bars.filter(open_time__lte=end)
    if start is not None:
        rows = list(bars.order_by("open_time")[:limit])
    else:
        rows = list(bars.order_by("-open_time")[:limit])[::-1]
    return [candle_to_wire(row, market) for row in rows]


def ticker(market: Market) -> dict:
    """Last price, best bid/ask and 24-hour open/high/low/volume from the market's trades."""
    since = timezone.now() - timedelta(hours=24)
    last = Trade.objects.filter(market=market).order_by("-id").only("price", "created_at").first()
    day = list(Trade.objects.filter(market=market, created_at__gte=since).order_by("id").values_list("price", "quantity"))
    book = book_snapshot(market, depth=1)
    return {
        "last_price": last.price if last else None,
        "last_trade_at": last.created_at if last else None,
        "best_bid": book["bids"][0][0] if book["bids"] else None,
        "best_ask": book["asks"][0][0] if book["asks"] else None,
        "open_24h": day[0][0] if day else None,
        "high_24h": max((p for p, _ in day), default=None),
        "low_24h": min((p for p, _ in day), default=None),
        "volume_24h": sum((q for _, q in day), Decimal(0)),
        "quote_volume_24h": sum((p * q for p, q in day), Decimal(0)),
        "sequence": book["sequence"],
    }


# --- private reads ----------------------------------------------------------------------------
def order_list(*, account_id: int, market: Market | None = None, status: str = "open"):
    orders = Order.objects.filter(account_id=account_id).select_related("market__base", "market__quote")
    if market is not None:
        orders = orders.filter(market=market)
    if status == "open":
        orders = orders.filter(status__in=Order.LIVE_STATUSES)
    elif status == "closed":
        orders = orders.filter(status__in=Order.CLOSED_STATUSES)
    return orders


def order_get(*, account_id: int, order_id=None, client_order_id: str | None = None) -> Order:
    """One of the account's orders; another account's order is indistinguishable from none."""
    orders = Order.objects.select_related("market__base", "market__quote").filter(account_id=account_id)
    if client_order_id is not None:
        order = orders.filter(client_order_id=client_order_id).first()
    else:
        pk = parse_id(order_id)
        order = None if pk is None else orders.filter(pk=pk).first()
    if order is None:
        raise errors.NotFound("Order not found.")
    return order


def fill_list(*, account_id: int, market: Market | None = None, order_id=None):
    fills = Fill.objects.filter(account_id=account_id).select_related("market__base", "market__quote", "order", "trade")
    if market is not None:
        fills = fills.filter(market=market)
    if order_id is not None:
        pk = parse_id(order_id)
        if pk is None:
            raise errors.ValidationError.field("order_id", "invalid", "order_id must be an order id.")
        fills = fills.filter(order_id=pk)
    return fills


def position_list(*, account_id: int) -> list[dict]:
    """Per market, the position the account's fills built, by the average-cost method.

    Buying adds to a long position at its price (a short is reduced first); selling reduces
    a long (or adds to a short). Reducing realises (exit − average) × quantity for longs and
    (average − exit) × quantity for shorts; fees, always in the quote asset, are subtracted
    from realised PnL. Unrealised PnL marks the open quantity at the market's last trade.
    """
    positions: dict[int, dict] = {}
    fills = Fill.objects.filter(account_id=account_id).order_by("id").values_list(
        "market_id", "side", "price", "quantity", "fee"
    )
    for market_id, side, price, quantity, fee in fills.iterator(chunk_size=5000):
        p = positions.setdefault(market_id, {"net": Decimal(0), "average": Decimal(0), "realized": Decimal(0),
                                             "fees": Decimal(0)})
        signed = quantity if side == Order.Side.BUY else -quantity
        net = p["net"]
        if net == 0 or (net > 0) == (signed > 0):  # opening or adding: new weighted average
            total = abs(net) + quantity
            p["average"] = (p["average"] * abs(net) + price * quantity) / total
            p["net"] = net + signed
        else:  # reducing, maybe through zero
            closed = min(abs(net), quantity)
            direction = 1 if net > 0 else -1
            p["realized"] += (price - p["average"]) * closed * direction
            p["net"] = net + signed
            if abs(signed) > closed:  # flipped: the rest opens at this price
                p["average"] = price
            elif p["net"] == 0:
                p["average"] = Decimal(0)
        p["realized"] -= fee
        p["fees"] += fee
    markets = {m.pk: m for m in Market.objects.select_related("base", "quote").filter(pk__in=positions)}
    out = []
    for market_id, p in sorted(positions.items(), key=lambda item: markets[item[0]].symbol):
        market = markets[market_id]
        last = Trade.objects.filter(market=market).order_by("-id").values_list("price", flat=True).first()
        unrealized = (last - p["average"]) * p["net"] if last is not None and p["net"] else Decimal(0)
        out.append({"market": market, "net_quantity": p["net"], "average_entry_price": p["average"] if p["net"] else None,
                    "realized_pnl": p["realized"], "unrealized_pnl": unrealized, "fees_paid": p["fees"],
                    "mark_price": last})
    return out


def fill_notionals(order_ids) -> dict[int, list[tuple[int, Decimal]]]:
    """For each order id, its fills as ``(fill id, exact price × quantity)`` in id order: what
    an order had filled before any one of its fills (the FIX report reader's exact AvgPx)."""
    out: dict[int, list[tuple[int, Decimal]]] = {order_id: [] for order_id in order_ids}
    rows = Fill.objects.filter(order_id__in=list(out)).order_by("id").values_list("order_id", "id", "price", "quantity")
    for order_id, fill_id, price, quantity in rows:
        out[order_id].append((fill_id, price * quantity))
    return out
