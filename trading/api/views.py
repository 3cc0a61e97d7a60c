"""Trading REST endpoints: thin views over ``trading.services`` and ``trading.selectors``.

Public market data needs no credentials; orders, fills and positions are the signed
caller's own (another account's objects are ``not_found``).
"""
from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework.response import Response

from apikeys.authentication import PrivateApi
from apikeys.models import Scope
from apikeys.schema import AUTH_ERROR_EXAMPLES, RATE_LIMIT_HEADERS
from exchange import errors, wire
from exchange.apiview import BourseApi
from exchange.pagination import paginate
from exchange.ratelimit import orders_rate_limit
from exchange.schema import PAGE_PARAMETERS, page_of, problem_responses
from exchange.syntax import ascii_digits
from exchange.timefilter import TIME_RANGE_NAMES, TIME_RANGE_PARAMETERS, filter_range, parse_range

from .. import selectors, services
from ..candles import INTERVALS
from ..representations import fill_to_wire, levels_to_wire, order_to_wire, ticker_to_wire, trade_to_wire
from .serializers import (
    AssetSerializer,
    BookSerializer,
    CancelAllSerializer,
    CandleSerializer,
    FillSerializer,
    MarketSerializer,
    OrderAmendSerializer,
    OrderSerializer,
    OrderSubmitSerializer,
    PositionSerializer,
    TickerSerializer,
    TradeSerializer,
    order_submit_body,
)

PRIVATE_ERRORS = (401, 403, 429)
MARKET_PARAM = OpenApiParameter("market", str, description="Only this market (e.g. `BTC-USD`).")

ORDER_EXAMPLE = {
    "order_id": "1042", "client_order_id": "mm-7f3a", "market": "BTC-USD", "side": "buy", "type": "limit",
    "time_in_force": "gtc", "post_only": False, "stp": "cancel_newest", "price": "100.000000",
    "quantity": "0.50000000", "quote_quantity": None, "stop_price": None, "expire_time": None,
    "filled_quantity": "0.20000000",
    "remaining_quantity": "0.30000000", "average_price": "99.990000", "status": "partially_filled",
    "reject_reason": None, "cancel_reason": None, "created_at": "2026-11-23T18:00:00.123456Z",
    "updated_at": "2026-11-23T18:00:00.125001Z",
}


def _market_or_none(symbol: str | None):
    if not symbol:
        return None
    market = selectors.market_list().filter(symbol=symbol).first()
    if market is None:
        raise errors.MarketNotFound(f"Market {symbol!r} does not exist.")
    return market


class MarketListApi(BourseApi):
    query_parameters = {"get": ("limit", "cursor")}

    @extend_schema(
        operation_id="markets_list",
        summary="List markets",
        description=(
            "Every market with its assets, filters (tick size, lot size, minimum quantity and notional), "
            "fees and status; paginated by symbol."
        ),
        tags=["market data"],
        parameters=PAGE_PARAMETERS,
        responses={200: page_of(MarketSerializer, "MarketPage"), **problem_responses(400)},
        auth=[],
    )
    def get(self, request):
        markets, next_cursor = paginate(selectors.market_list(), request.query_params, key="symbol")
        return Response({"results": MarketSerializer(markets, many=True).data, "next_cursor": next_cursor})


class MarketDetailApi(BourseApi):
    @extend_schema(
        operation_id="markets_get",
        summary="Get a market",
        description=(
            "One market by symbol (e.g. `BTC-USD`): assets, filters, fees and status."
        ),
        tags=["market data"],
        responses={200: MarketSerializer, **problem_responses(404)},
        auth=[],
    )
    def get(self, request, symbol: str):
        return Response(MarketSerializer(selectors.market_get(symbol)).data)


class MarketBookApi(BourseApi):
    query_parameters = {"get": ("depth",)}

    @extend_schema(
        operation_id="markets_book",
        summary="Get a market's order book",
        description=(
            "The aggregated order book: price levels per side as `[price, quantity]`, best first, with the "
            "book's `sequence` (the WebSocket `book:` channel continues from it)."
        ),
        tags=["market data"],
        parameters=[OpenApiParameter("depth", int, description=f"Levels per side, 1-{selectors.MAX_BOOK_DEPTH} (default 50).")],
        responses={200: BookSerializer, **problem_responses(400, 404)},
        auth=[],
        examples=[OpenApiExample("Book", response_only=True, value={
            "market": "BTC-USD", "sequence": 1877,
            "bids": [["99.990000", "0.75000000"], ["99.980000", "1.20000000"]],
            "asks": [["100.010000", "0.40000000"]]})],
    )
    def get(self, request, symbol: str):
        market = selectors.market_get(symbol)
        raw = request.query_params.get("depth", "50")
        if not ascii_digits(raw, 4) or not 1 <= int(raw) <= selectors.MAX_BOOK_DEPTH:
            raise errors.ValidationError.field("depth", "invalid", f"depth must be an integer from 1 to {selectors.MAX_BOOK_DEPTH}.")
        book = selectors.book_snapshot(market, int(raw))
        return Response({"market": market.symbol, "sequence": book["sequence"],
                         "bids": levels_to_wire(book["bids"], market), "asks": levels_to_wire(book["asks"], market)})


class MarketTradeListApi(BourseApi):
    query_parameters = {"get": ("limit", "cursor", *TIME_RANGE_NAMES)}

    @extend_schema(
        operation_id="markets_trades",
        summary="List a market's trades",
        description=(
            "The market's public trades, newest first; paginated. `trade_id` rises by 1 per trade of the market."
        ),
        tags=["market data"],
        parameters=[*PAGE_PARAMETERS, *TIME_RANGE_PARAMETERS],
        responses={200: page_of(TradeSerializer, "TradePage"), **problem_responses(400, 404)},
        auth=[],
    )
    def get(self, request, symbol: str):
        market = selectors.market_get(symbol)
        trades = filter_range(selectors.trade_list(market), request.query_params)
        trades, next_cursor = paginate(trades, request.query_params, key="id", descending=True)
        return Response({"results": [trade_to_wire(t, market) for t in trades], "next_cursor": next_cursor})


class MarketTickerApi(BourseApi):
    @extend_schema(
        operation_id="markets_ticker",
        summary="Get a market's ticker",
        description=(
            "Best bid and ask, last price and the rolling 24-hour open, high, low and volume."
        ),
        tags=["market data"],
        responses={200: TickerSerializer, **problem_responses(404)},
        auth=[],
    )
    def get(self, request, symbol: str):
        market = selectors.market_get(symbol)
        return Response(ticker_to_wire(market, selectors.ticker(market)))


TICKER_EXAMPLE = {
    "market": "BTC-USD", "last_price": "100.010000", "last_trade_at": "2026-11-23T18:00:00.123456Z",
    "best_bid": "99.990000", "best_ask": "100.010000", "open_24h": "98.500000", "high_24h": "101.000000",
    "low_24h": "97.250000", "volume_24h": "12.50000000", "quote_volume_24h": "1243.870000", "sequence": 1877,
}


class TickerListApi(BourseApi):
    query_parameters = {"get": ("limit", "cursor")}

    @extend_schema(
        operation_id="tickers_list",
        summary="List every market's ticker",
        description=(
            "Every market's ticker (the shape of `GET /markets/{symbol}/ticker`: best bid and ask, last price, "
            "rolling 24-hour open, high, low and volume), by symbol; paginated."
        ),
        tags=["market data"],
        parameters=PAGE_PARAMETERS,
        responses={200: page_of(TickerSerializer, "TickerPage"), **problem_responses(400)},
        auth=[],
        examples=[OpenApiExample("Tickers", response_only=True, value={"results": [TICKER_EXAMPLE], "next_cursor": None})],
    )
    def get(self, request):
        markets, next_cursor = paginate(selectors.market_list(), request.query_params, key="symbol")
        return Response({"results": [ticker_to_wire(m, selectors.ticker(m)) for m in markets],
                         "next_cursor": next_cursor})


class AssetListApi(BourseApi):
    query_parameters = {"get": ("limit", "cursor")}

    @extend_schema(
        operation_id="assets_list",
        summary="List assets",
        description="Every asset with the number of decimal places its amounts carry; paginated by symbol.",
        tags=["market data"],
        parameters=PAGE_PARAMETERS,
        responses={200: page_of(AssetSerializer, "AssetPage"), **problem_responses(400)},
        auth=[],
        examples=[OpenApiExample("Assets", response_only=True, value={
            "results": [{"symbol": "BTC", "decimals": 8}, {"symbol": "USD", "decimals": 6}], "next_cursor": None})],
    )
    def get(self, request):
        assets, next_cursor = paginate(selectors.asset_list(), request.query_params, key="code")
        return Response({"results": AssetSerializer(assets, many=True).data, "next_cursor": next_cursor})


DEFAULT_CANDLES = 500


class MarketCandleListApi(BourseApi):
    query_parameters = {"get": ("interval", "start", "end", "limit")}

    @extend_schema(
        operation_id="markets_candles",
        summary="List a market's candles",
        description=(
            "OHLCV bars built from the market's trades, oldest first. Bars are aligned on UTC multiples of "
            "their length (`1d` opens at 00:00 UTC); an interval without trades has no bar. With `start`, the "
            "first `limit` bars from it; otherwise the newest `limit` bars up to `end` (or now). `start` and `end` "
            "bound the bars' `open_time` (inclusive)."
        ),
        tags=["market data"],
        parameters=[
            OpenApiParameter("interval", str, required=True, enum=list(INTERVALS), description="Bar length."),
            OpenApiParameter("start", str, description="Earliest `open_time` (RFC 3339, e.g. `2026-11-23T18:00:00Z`)."),
            OpenApiParameter("end", str, description="Latest `open_time` (RFC 3339); not before `start`."),
            OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": selectors.MAX_CANDLES,
                                       "default": DEFAULT_CANDLES},
                             description=f"Bars, 1-{selectors.MAX_CANDLES} (default {DEFAULT_CANDLES})."),
        ],
        responses={200: CandleSerializer(many=True), **problem_responses(400, 404)},
        auth=[],
        # drf-spectacular lists the example of a many=True response itself: one bar here, `[bar]` in the document
        examples=[OpenApiExample("1m candles", response_only=True, value={
            "open_time": "2026-11-23T18:00:00.000000Z", "open": "99.990000", "high": "100.050000",
            "low": "99.950000", "close": "100.010000", "volume": "3.25000000", "quote_volume": "325.012500",
            "trades": 14})],
    )
    def get(self, request, symbol: str):
        market = selectors.market_get(symbol)
        params = request.query_params
        interval = params.get("interval")
        if interval not in INTERVALS:
            raise errors.ValidationError.field(
                "interval", "invalid_choice", f"interval must be one of {', '.join(INTERVALS)}.")
        raw = params.get("limit", str(DEFAULT_CANDLES))
        if not ascii_digits(raw, 4) or not 1 <= int(raw) <= selectors.MAX_CANDLES:
            raise errors.ValidationError.field("limit", "invalid", f"limit must be an integer from 1 to {selectors.MAX_CANDLES}.")
        start, end = parse_range(params, "start", "end")
        return Response(selectors.candle_list(market, interval, start=start, end=end, limit=int(raw)))


class OrderListSubmitApi(PrivateApi):
    """POST submits an order (scope `trade`); GET lists the caller's orders; DELETE cancels
    all of the caller's open orders (scope `trade`)."""

    query_parameters = {"get": ("market", "status", "limit", "cursor", *TIME_RANGE_NAMES), "delete": ("market",)}
    write_scope = Scope.TRADE  # GET/HEAD read (scope read); POST/DELETE need trade

    @extend_schema(
        operation_id="orders_submit",
        summary="Submit an order",
        description=(
            "Submits an order for the signed caller (scope `trade`): 201 with the order as the matching "
            "engine left it, 200 for an identical earlier submission with the same `client_order_id`, 202 "
            "when the engine did not answer within 2 s (status `pending`, funds stay held). Counts against "
            "the `orders` budget (docs/trading.md)."
        ),
        tags=["orders"],
        request=OrderSubmitSerializer,
        parameters=RATE_LIMIT_HEADERS,
        responses={
            201: OpenApiResponse(OrderSerializer, description="The order as the matching engine left it."),
            200: OpenApiResponse(OrderSerializer, description="An identical earlier submission with this `client_order_id`."),
            202: OpenApiResponse(
                OrderSerializer,
                description="The engine did not answer within 2 s: the order is kept (status `pending`) and its funds stay held.",
            ),
            **problem_responses(400, *PRIVATE_ERRORS, 409, 413, 422),
        },
        examples=[*AUTH_ERROR_EXAMPLES,
                  OpenApiExample("Limit buy", request_only=True, value={
                      "market": "BTC-USD", "side": "buy", "type": "limit", "price": "100.00",
                      "quantity": "0.5000", "time_in_force": "gtc", "client_order_id": "mm-7f3a"}),
                  OpenApiExample("Market buy spending 250 USD (fees included)", request_only=True, value={
                      "market": "BTC-USD", "side": "buy", "type": "market", "quote_quantity": "250.00"}),
                  OpenApiExample("Stop-limit sell: when a trade prints at or below 95, sell at 94.50 or better",
                                 request_only=True, value={
                                     "market": "BTC-USD", "side": "sell", "type": "stop_limit", "stop_price": "95.00",
                                     "price": "94.50", "quantity": "0.5000"}),
                  OpenApiExample("Stop-market buy: when a trade prints at or above 110, buy for up to 500 USD",
                                 request_only=True, value={
                                     "market": "BTC-USD", "side": "buy", "type": "stop_market", "stop_price": "110.00",
                                     "quote_quantity": "500.00"}),
                  OpenApiExample("Good-till-date limit buy", request_only=True, value={
                      "market": "BTC-USD", "side": "buy", "type": "limit", "price": "99.00", "quantity": "0.2500",
                      "time_in_force": "gtd", "expire_time": "2026-12-31T23:59:59Z"}),
                  OpenApiExample("Order", response_only=True, status_codes=["201"], value=ORDER_EXAMPLE)],
    )
    @orders_rate_limit
    def post(self, request):
        result = services.order_submit(
            account=request.auth.account, wait=settings.BOURSE_ENGINE_WAIT_S, **order_submit_body(request.data)
        )
        order = result.order
        status = 200 if not result.created else 202 if order.status == "pending" else 201
        return Response(order_to_wire(order), status=status)

    @extend_schema(
        operation_id="orders_list",
        summary="List orders",
        description=(
            "The caller's orders, newest first; `status` selects open (default), closed or all; paginated."
        ),
        tags=["orders"],
        parameters=[
            MARKET_PARAM,
            OpenApiParameter("status", str, enum=["open", "closed", "all"],
                             description="`open` (default: pending, open, partially filled), `closed`, or `all`."),
            *PAGE_PARAMETERS, *TIME_RANGE_PARAMETERS, *RATE_LIMIT_HEADERS,
        ],
        responses={200: page_of(OrderSerializer, "OrderPage"), **problem_responses(400, *PRIVATE_ERRORS, 422)},
        examples=AUTH_ERROR_EXAMPLES,
    )
    def get(self, request):
        status = request.query_params.get("status", "open")
        if status not in ("open", "closed", "all"):
            raise errors.ValidationError.field("status", "invalid_choice", "status must be open, closed or all.")
        market = _market_or_none(request.query_params.get("market"))
        orders = filter_range(selectors.order_list(account_id=request.auth.account_id, market=market, status=status),
                              request.query_params)
        page, next_cursor = paginate(orders, request.query_params, key="id", descending=True)
        return Response({"results": [order_to_wire(o) for o in page], "next_cursor": next_cursor})

    @extend_schema(
        operation_id="orders_cancel_all",
        summary="Cancel all open orders",
        description=(
            "Cancels every open order of the caller (scope `trade`), optionally in one market; returns the cancelled order ids."
        ),
        tags=["orders"],
        parameters=[MARKET_PARAM, *RATE_LIMIT_HEADERS],
        responses={200: CancelAllSerializer, **problem_responses(*PRIVATE_ERRORS, 422)},
        examples=AUTH_ERROR_EXAMPLES,
    )
    def delete(self, request):
        market = request.query_params.get("market") or None
        cancelled = services.order_cancel_all(
            account=request.auth.account, market=market, wait=settings.BOURSE_ENGINE_WAIT_S
        )
        return Response({"cancelled": [str(pk) for pk in cancelled]})



# The answers of a cancel, by order id or by client order id.
CANCEL_RESPONSES = {
    200: OpenApiResponse(OrderSerializer, description="Cancelled: the order as the engine left it."),
    202: OpenApiResponse(OrderSerializer, description="The engine did not answer within 2 s; the cancel stays queued."),
    **problem_responses(*PRIVATE_ERRORS, 404, 409),
}

class OrderDetailApi(PrivateApi):
    write_scope = Scope.TRADE  # GET/HEAD read (scope read); POST/DELETE need trade

    @extend_schema(
        operation_id="orders_get",
        summary="Get an order",
        description=(
            "One of the caller's orders by its `order_id` (another account's order is `not_found`)."
        ),
        tags=["orders"],
        parameters=RATE_LIMIT_HEADERS,
        responses={200: OrderSerializer, **problem_responses(*PRIVATE_ERRORS, 404)},
        examples=AUTH_ERROR_EXAMPLES,
    )
    def get(self, request, order_id: str):
        return Response(order_to_wire(selectors.order_get(account_id=request.auth.account_id, order_id=order_id)))

    @extend_schema(
        operation_id="orders_cancel",
        summary="Cancel an order",
        description=(
            "Cancels one of the caller's open orders (scope `trade`); 200 once the engine cancelled it, 202 "
            "when it did not answer within 2 s (the cancel stays queued)."
        ),
        tags=["orders"],
        parameters=RATE_LIMIT_HEADERS,
        responses=CANCEL_RESPONSES,
        examples=AUTH_ERROR_EXAMPLES,
    )
    def delete(self, request, order_id: str):
        order, answered = services.order_cancel(
            account=request.auth.account, order_id=order_id, wait=settings.BOURSE_ENGINE_WAIT_S
        )
        return Response(order_to_wire(order), status=200 if answered else 202)

    @extend_schema(
        operation_id="orders_amend",
        summary="Amend an order",
        description=(
            "Changes one of the caller's live orders in place (scope `trade`; same `order_id`): any of `price`, "
            "`quantity` (the new TOTAL quantity, above what already filled) and `client_order_id`. A quantity "
            "decrease at the same price keeps the order's time priority; a price change or a quantity increase "
            "loses it (the order re-enters the book, and trades at once if the new price crosses). Extra funds the "
            "new price or quantity needs are held before the amend is accepted (`insufficient_balance` "
            "otherwise); what it no longer needs is released once the engine applied it. Limit and stop-limit "
            "orders take price and quantity; any order can change its `client_order_id`. 200 with the order as "
            "the engine left it, 202 when the engine did not answer within 2 s (the amend stays queued). Counts "
            "against the `orders` budget."
        ),
        tags=["orders"],
        request=OrderAmendSerializer,
        parameters=RATE_LIMIT_HEADERS,
        responses={
            200: OpenApiResponse(OrderSerializer, description="Amended: the order as the engine left it."),
            202: OpenApiResponse(OrderSerializer, description="The engine did not answer within 2 s; the amend stays queued."),
            **problem_responses(400, *PRIVATE_ERRORS, 404, 409, 413, 422),
        },
        examples=[*AUTH_ERROR_EXAMPLES,
                  OpenApiExample("Reduce to 0.3 (keeps priority)", request_only=True, value={"quantity": "0.3000"}),
                  OpenApiExample("Move the price (loses priority)", request_only=True, value={"price": "99.50"}),
                  OpenApiExample("Amended", response_only=True, status_codes=["200"],
                                 value={**ORDER_EXAMPLE, "quantity": "0.30000000", "remaining_quantity": "0.10000000"})],
    )
    @orders_rate_limit
    def patch(self, request, order_id: str):
        body = OrderAmendSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        order, answered = services.order_amend(
            request.auth.account, order_id, wait=settings.BOURSE_ENGINE_WAIT_S, **body.validated_data
        )
        return Response(order_to_wire(order), status=200 if answered else 202)


class OrderByClientIdApi(PrivateApi):
    write_scope = Scope.TRADE  # GET/HEAD read (scope read); DELETE needs trade

    @extend_schema(
        operation_id="orders_get_by_client_id",
        summary="Get an order by client order id",
        description=(
            "One of the caller's orders by the `client_order_id` it was submitted with."
        ),
        tags=["orders"],
        parameters=RATE_LIMIT_HEADERS,
        responses={200: OrderSerializer, **problem_responses(*PRIVATE_ERRORS, 404)},
        examples=AUTH_ERROR_EXAMPLES,
    )
    def get(self, request, client_order_id: str):
        order = selectors.order_get(account_id=request.auth.account_id, client_order_id=client_order_id)
        return Response(order_to_wire(order))

    @extend_schema(
        operation_id="orders_cancel_by_client_id",
        summary="Cancel an order by client order id",
        description=(
            "Cancels the caller's open order submitted with this `client_order_id` (scope `trade`); as "
            "`DELETE /orders/{order_id}`: 200 once the engine cancelled it, 202 when it did not answer within 2 s."
        ),
        tags=["orders"],
        parameters=RATE_LIMIT_HEADERS,
        responses=CANCEL_RESPONSES,
        examples=AUTH_ERROR_EXAMPLES,
    )
    def delete(self, request, client_order_id: str):
        order, answered = services.order_cancel_by_client_id(
            account=request.auth.account, client_order_id=client_order_id, wait=settings.BOURSE_ENGINE_WAIT_S
        )
        return Response(order_to_wire(order), status=200 if answered else 202)


class FillListApi(PrivateApi):
    query_parameters = {"get": ("market", "order_id", "limit", "cursor", *TIME_RANGE_NAMES)}

    @extend_schema(
        operation_id="fills_list",
        summary="List fills",
        description=(
            "The caller's fills (its side of each trade, with fee and liquidity), newest first; paginated."
        ),
        tags=["orders"],
        parameters=[MARKET_PARAM, OpenApiParameter("order_id", str, description="Only this order's fills."),
                    *PAGE_PARAMETERS, *TIME_RANGE_PARAMETERS, *RATE_LIMIT_HEADERS],
        responses={200: page_of(FillSerializer, "FillPage"), **problem_responses(400, *PRIVATE_ERRORS, 422)},
        examples=AUTH_ERROR_EXAMPLES,
    )
    def get(self, request):
        market = _market_or_none(request.query_params.get("market"))
        fills = filter_range(selectors.fill_list(account_id=request.auth.account_id, market=market,
                                                 order_id=request.query_params.get("order_id")), request.query_params)
        page, next_cursor = paginate(fills, request.query_params, key="id", descending=True)
        return Response({"results": [fill_to_wire(f, f.market, f.order.client_order_id) for f in page],
                         "next_cursor": next_cursor})


class PositionListApi(PrivateApi):
    """Per market, the position built by the caller's fills (average-cost method; see
    docs/trading.md)."""

    @extend_schema(
        operation_id="positions_list",
        summary="List positions",
        tags=["account"],
        parameters=RATE_LIMIT_HEADERS,
        responses={200: inline_serializer("PositionList", {"results": PositionSerializer(many=True)}),
                   **problem_responses(*PRIVATE_ERRORS)},
        examples=AUTH_ERROR_EXAMPLES,
    )
    def get(self, request):
        rows = []
        for p in selectors.position_list(account_id=request.auth.account_id):
            market = p["market"]
            q, b = market.quote.scale, market.base.scale
            rows.append({
                "market": market.symbol, "base": market.base_id, "quote": market.quote_id,
                "net_quantity": wire.money(p["net_quantity"], b),
                "average_entry_price": wire.money(p["average_entry_price"], q),
                "mark_price": wire.money(p["mark_price"], q),
                "realized_pnl": wire.money(p["realized_pnl"], q),
                "unrealized_pnl": wire.money(p["unrealized_pnl"], q),
                "fees_paid": wire.money(p["fees_paid"], q),
            })
        return Response({"results": rows})
