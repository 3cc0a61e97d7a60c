"""What the sync, async and pro ccxt classes share: the exchange description (``has``,
``timeframes``, endpoints, error map), request signing, error handling and the parsers from
Bourse's objects to ccxt's unified structures. Only ccxt's own helpers are used here."""
from __future__ import annotations

from typing import Any

from ccxt.base.decimal_to_precision import TICK_SIZE
from ccxt.base.errors import (
    AuthenticationError,
    BadRequest,
    BadSymbol,
    DuplicateOrderId,
    ExchangeError,
    ExchangeNotAvailable,
    InsufficientFunds,
    InvalidNonce,
    InvalidOrder,
    MarketClosed,
    OrderNotFound,
    PermissionDenied,
    RateLimitExceeded,
)
from ccxt.base.precise import Precise

from .._signing import Ed25519Signer, HmacSigner, Signer, new_nonce, signed_string

API_PREFIX = "/api/v1/"

# Bourse's stable problem codes (docs/errors.md) -> ccxt's exception classes.
EXACT_ERRORS: dict[str, type[Exception]] = {
    "validation_error": BadRequest,
    "invalid_amount": InvalidOrder,
    "missing_credentials": AuthenticationError,
    "invalid_credentials": AuthenticationError,
    "key_revoked": AuthenticationError,
    "key_expired": AuthenticationError,
    "not_authenticated": AuthenticationError,
    "timestamp_out_of_window": InvalidNonce,
    "nonce_reused": InvalidNonce,
    "permission_denied": PermissionDenied,
    "ip_not_allowed": PermissionDenied,
    "not_found": ExchangeError,  # OrderNotFound on the order paths (handle_errors)
    "duplicate_client_order_id": DuplicateOrderId,
    "order_closed": OrderNotFound,  # no open order by that id any more (filled, cancelled or rejected)
    "payload_too_large": BadRequest,
    "bad_request": BadRequest,
    "unsupported_media_type": BadRequest,
    "method_not_allowed": BadRequest,
    "insufficient_balance": InsufficientFunds,
    "market_halted": MarketClosed,
    "market_not_found": BadSymbol,
    "asset_not_found": BadSymbol,
    "unknown_channel": BadSymbol,
    "rate_limited": RateLimitExceeded,
    "too_many_connections": RateLimitExceeded,
    "too_many_subscriptions": BadRequest,
    "already_authenticated": BadRequest,
    "invalid_message": BadRequest,
    "unknown_op": BadRequest,
    "resync_required": ExchangeError,
    "service_unavailable": ExchangeNotAvailable,
    "internal_error": ExchangeError,
}

# A validation_error on an order names the market rule it broke: that is an InvalidOrder.
ORDER_RULES = frozenset({"tick_size", "lot_size", "min_quantity", "min_notional", "post_only_would_cross"})

ORDER_STATUS = {"pending": "open", "open": "open", "partially_filled": "open", "filled": "closed",
                "cancelled": "canceled", "rejected": "rejected"}

# Bourse ledger kinds -> ccxt ledger entry types (the kind itself stays in info).
LEDGER_TYPES = {"deposit": "transaction", "withdrawal": "transaction", "adjustment": "transaction",
                "hold": "transfer", "release": "transfer", "trade": "trade", "fee": "fee"}

HAS = {
    "CORS": None, "spot": True, "margin": False, "swap": False, "future": False, "option": False,
    "cancelAllOrders": True, "cancelOrder": True, "createOrder": True, "createLimitOrder": True,
    "createMarketOrder": True, "createMarketBuyOrderWithCost": True, "createPostOnlyOrder": True,
    "editOrder": False,  # PATCH /orders/{id} is not in the API yet
    "fetchBalance": True, "fetchClosedOrders": True, "fetchCurrencies": True, "fetchMarkets": True,
    "fetchMyTrades": True, "fetchOHLCV": False,  # no candles endpoint exists yet
    "fetchOpenOrders": True, "fetchOrder": True, "fetchOrderBook": True, "fetchOrders": True,
    "fetchOrderTrades": True, "fetchPositions": True, "fetchTicker": True,
    "fetchTickers": True,  # one request per market (no GET /tickers yet)
    "fetchTime": True, "fetchTrades": True, "fetchTradingFee": True, "fetchTradingFees": True,
    "fetchDeposits": False, "fetchWithdrawals": False, "withdraw": False, "fetchDepositAddress": False,
    "fetchFundingRate": False, "fetchFundingRates": False, "fetchLeverage": False, "setLeverage": False,
    "fetchMarginMode": False, "setMarginMode": False, "fetchLedger": True, "fetchAccounts": False,
    "ws": False,
}


def describe() -> dict[str, Any]:
    return {
        "id": "bourse",
        "name": "Bourse",
        "countries": [],
        "version": "v1",
        "rateLimit": 50,  # ms between requests: the default key budget is 1200 per 60 s
        "certified": False,
        "pro": True,
        "has": dict(HAS),
        "timeframes": {},  # no candles endpoint yet: fetchOHLCV is False
        "precisionMode": TICK_SIZE,
        "urls": {
            "api": {"rest": "http://127.0.0.1:8000"},  # a self-hosted exchange: pass your deployment's
            "www": "https://github.com/",
            "doc": ["docs/quickstart.md", "docs/openapi.yaml"],
        },
        "api": {
            "public": {"get": {"time": 1, "markets": 1, "markets/{symbol}": 1, "markets/{symbol}/book": 1,
                               "markets/{symbol}/ticker": 1, "markets/{symbol}/trades": 1}},
            "private": {
                "get": {"account": 1, "balances": 1, "positions": 1, "orders": 1, "orders/{order_id}": 1,
                        "orders/by-client-id/{client_order_id}": 1, "fills": 1, "ledger": 1},
                "post": {"orders": 1},
                "delete": {"orders": 1, "orders/{order_id}": 1},
            },
        },
        "requiredCredentials": {"apiKey": True, "secret": True},
        "options": {
            # "hmac" (secret = the key's secret) or "ed25519" (secret = base64 of the 32-byte seed)
            "signatureScheme": "hmac",
            "window": None,  # X-API-Window in ms (default 5000 on the server)
            "adjustForTimeDifference": False,
            "createMarketBuyOrderRequiresPrice": True,
            "sequences": {},  # private WebSocket streams: the last sequence seen (resumed with since)
        },
        "exceptions": {"exact": dict(EXACT_ERRORS), "broad": {}},
        "fees": {"trading": {"tierBased": False, "percentage": True}},
    }


class BourseMixin:
    """Methods identical in the sync and async classes. ``self`` is a ccxt Exchange."""

    _bourse_signer: Signer | None = None
    _bourse_signer_for: tuple[str, str] | None = None

    # -- URLs and signing ---------------------------------------------------------------------
    def bourse_rest_url(self) -> str:
        api = self.urls["api"]  # type: ignore[attr-defined]
        url = api if isinstance(api, str) else (api.get("rest") or api.get("public"))
        if not url:
            raise ExchangeError("bourse: set urls['api'] to your Bourse, e.g. http://127.0.0.1:8000")
        return str(url).rstrip("/")

    def bourse_ws_url(self) -> str:
        api = self.urls["api"]  # type: ignore[attr-defined]
        if isinstance(api, dict) and api.get("ws"):
            return str(api["ws"])
        rest = self.bourse_rest_url()
        return ("wss" + rest[5:] if rest.startswith("https") else "ws" + rest[4:]) + "/ws/v1"

    def bourse_signer(self) -> Signer:
        scheme = self.safe_string(self.options, "signatureScheme", "hmac")  # type: ignore[attr-defined]
        fingerprint = (scheme, self.secret)  # type: ignore[attr-defined]
        if self._bourse_signer is None or self._bourse_signer_for != fingerprint:
            self._bourse_signer = (Ed25519Signer(self.secret) if scheme == "ed25519"  # type: ignore[attr-defined]
                                   else HmacSigner(self.secret))  # type: ignore[attr-defined]
            self._bourse_signer_for = fingerprint
        return self._bourse_signer

    def bourse_timestamp(self) -> str:
        return str(self.milliseconds() - int(self.safe_integer(self.options, "timeDifference", 0)))  # type: ignore[attr-defined]

    def sign(self, path: str, api: Any = "public", method: str = "GET", params: Any = None,
             headers: Any = None, body: Any = None) -> dict[str, Any]:
        params = params or {}
        section = api[0] if isinstance(api, list) else api
        request_path = API_PREFIX + self.implode_params(path, params)  # type: ignore[attr-defined]
        query = self.omit(params, self.extract_params(path))  # type: ignore[attr-defined]
        query_string = ""
        if method in ("GET", "DELETE"):
            if query:
                query_string = self.urlencode(query)  # type: ignore[attr-defined]
        elif query:
            body = self.json(query)  # type: ignore[attr-defined]
        url = self.bourse_rest_url() + request_path + ("?" + query_string if query_string else "")
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if section == "private":
            self.check_required_credentials()  # type: ignore[attr-defined]
            timestamp, nonce = self.bourse_timestamp(), new_nonce()
            raw = body.encode() if body is not None else b""
            signature = self.bourse_signer().sign(signed_string(timestamp, nonce, method, request_path, query_string, raw))
            headers.update({"X-API-Key": self.apiKey, "X-API-Timestamp": timestamp,  # type: ignore[attr-defined]
                            "X-API-Nonce": nonce, "X-API-Signature": signature})
            window = self.safe_integer(self.options, "window")  # type: ignore[attr-defined]
            if window:
                headers["X-API-Window"] = str(window)
        return {"url": url, "method": method, "body": body, "headers": headers}

    def handle_errors(self, code: int, reason: str, url: str, method: str, headers: Any, body: str, response: Any,
                      request_headers: Any, request_body: Any) -> None:
        if response is None or code < 400 or not isinstance(response, dict):
            return None
        error_code = self.safe_string(response, "code")  # type: ignore[attr-defined]
        if error_code is None:
            return None
        feedback = self.id + " " + body  # type: ignore[attr-defined]
        path = url.split("?", 1)[0]
        if error_code == "not_found" and "/api/v1/orders" in path:
            raise OrderNotFound(feedback)
        if error_code == "validation_error" and method == "POST" and path.endswith("/api/v1/orders"):
            raise InvalidOrder(feedback)
        if error_code == "validation_error" and any(
                isinstance(e, dict) and e.get("code") in ORDER_RULES for e in response.get("errors") or []):
            raise InvalidOrder(feedback)
        self.throw_exactly_matched_exception(self.exceptions["exact"], error_code, feedback)  # type: ignore[attr-defined]
        raise ExchangeError(feedback)

    # -- parsers ------------------------------------------------------------------------------
    def parse_market(self, market: dict[str, Any]) -> dict[str, Any]:
        base_id, quote_id = market["base"], market["quote"]
        base = self.safe_currency_code(base_id)  # type: ignore[attr-defined]
        quote = self.safe_currency_code(quote_id)  # type: ignore[attr-defined]
        tick = self.safe_number(market, "tick_size")  # type: ignore[attr-defined]
        lot = self.safe_number(market, "lot_size")  # type: ignore[attr-defined]
        min_quantity = self.safe_string(market, "min_quantity")  # type: ignore[attr-defined]
        min_amount = Precise.string_max(min_quantity or "0", market["lot_size"])
        min_notional = self.safe_string(market, "min_notional")  # type: ignore[attr-defined]
        return self.safe_market_structure({  # type: ignore[attr-defined, no-any-return]
            "id": market["symbol"], "symbol": base + "/" + quote, "base": base, "quote": quote, "settle": None,
            "baseId": base_id, "quoteId": quote_id, "settleId": None, "type": "spot", "spot": True,
            "margin": False, "swap": False, "future": False, "option": False, "contract": False,
            "active": market.get("status") == "open", "linear": None, "inverse": None, "contractSize": None,
            "expiry": None, "expiryDatetime": None, "strike": None, "optionType": None,
            "taker": self.safe_number(market, "taker_fee_rate"),  # type: ignore[attr-defined]
            "maker": self.safe_number(market, "maker_fee_rate"),  # type: ignore[attr-defined]
            "percentage": True, "tierBased": False,
            "precision": {"amount": lot, "price": tick},
            "limits": {
                "amount": {"min": self.parse_number(min_amount),  # type: ignore[attr-defined]
                           "max": self.safe_number(market, "max_quantity")},  # type: ignore[attr-defined]
                "price": {"min": tick, "max": self.safe_number(market, "max_price")},  # type: ignore[attr-defined]
                "cost": {"min": self.parse_number(min_notional) if min_notional and Precise.string_gt(min_notional, "0") else None,  # type: ignore[attr-defined]
                         "max": self.safe_number(market, "max_notional")},  # type: ignore[attr-defined]
                "leverage": {"min": None, "max": None},
            },
            "created": None, "info": market,
        })

    def currencies_from_markets(self, markets: list[dict[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for market in markets:
            for code_id in (market["base"], market["quote"]):
                code = self.safe_currency_code(code_id)  # type: ignore[attr-defined]
                if code in result:
                    continue
                result[code] = self.safe_currency_structure({  # type: ignore[attr-defined]
                    "id": code_id, "code": code, "name": code, "active": True,
                    # deposits and withdrawals are made by an operator, not through the API
                    "deposit": False, "withdraw": False,
                    "fee": None, "precision": None, "type": "crypto", "networks": {},
                    "limits": {"amount": {"min": None, "max": None}, "withdraw": {"min": None, "max": None}},
                    "info": {"asset": code_id},
                })
        return result

    def parse_ticker(self, ticker: dict[str, Any], market: Any = None) -> dict[str, Any]:
        market = self.safe_market(self.safe_string(ticker, "market"), market)  # type: ignore[attr-defined]
        last = self.safe_string(ticker, "last_price")  # type: ignore[attr-defined]
        return self.safe_ticker({  # type: ignore[attr-defined, no-any-return]
            "symbol": market["symbol"], "timestamp": None, "datetime": None,
            "high": self.safe_string(ticker, "high_24h"), "low": self.safe_string(ticker, "low_24h"),  # type: ignore[attr-defined]
            "bid": self.safe_string(ticker, "best_bid"), "bidVolume": None,  # type: ignore[attr-defined]
            "ask": self.safe_string(ticker, "best_ask"), "askVolume": None,  # type: ignore[attr-defined]
            "vwap": None, "open": self.safe_string(ticker, "open_24h"), "close": last, "last": last,  # type: ignore[attr-defined]
            "previousClose": None, "change": None, "percentage": None, "average": None,
            "baseVolume": self.safe_string(ticker, "volume_24h"),  # type: ignore[attr-defined]
            "quoteVolume": self.safe_string(ticker, "quote_volume_24h"), "info": ticker,  # type: ignore[attr-defined]
        }, market)

    def parse_trade(self, trade: dict[str, Any], market: Any = None) -> dict[str, Any]:
        market = self.safe_market(self.safe_string(trade, "market"), market)  # type: ignore[attr-defined]
        timestamp = self.parse8601(self.safe_string(trade, "created_at"))  # type: ignore[attr-defined]
        fee = None
        if "fill_id" in trade:  # one of the account's fills (fetch_my_trades, the fills stream)
            side = self.safe_string(trade, "side")  # type: ignore[attr-defined]
            taker_or_maker = self.safe_string(trade, "liquidity")  # type: ignore[attr-defined]
            fee = {"cost": self.safe_string(trade, "fee"),  # type: ignore[attr-defined]
                   "currency": self.safe_currency_code(self.safe_string(trade, "fee_asset"))}  # type: ignore[attr-defined]
            order = self.safe_string(trade, "order_id")  # type: ignore[attr-defined]
        else:  # a public trade: the side is the taker's
            side, taker_or_maker, order = self.safe_string(trade, "taker_side"), "taker", None  # type: ignore[attr-defined]
        return self.safe_trade({  # type: ignore[attr-defined, no-any-return]
            "id": self.safe_string(trade, "trade_id"), "order": order,  # type: ignore[attr-defined]
            "timestamp": timestamp, "datetime": self.iso8601(timestamp), "symbol": market["symbol"],  # type: ignore[attr-defined]
            "type": None, "side": side, "takerOrMaker": taker_or_maker,
            "price": self.safe_string(trade, "price"), "amount": self.safe_string(trade, "quantity"),  # type: ignore[attr-defined]
            "cost": None, "fee": fee, "info": trade,
        }, market)

    def parse_order(self, order: dict[str, Any], market: Any = None) -> dict[str, Any]:
        market = self.safe_market(self.safe_string(order, "market"), market)  # type: ignore[attr-defined]
        timestamp = self.parse8601(self.safe_string(order, "created_at"))  # type: ignore[attr-defined]
        status = self.safe_string(order, "status")  # type: ignore[attr-defined]
        tif = self.safe_string_upper(order, "time_in_force")  # type: ignore[attr-defined]
        filled = self.safe_string(order, "filled_quantity")  # type: ignore[attr-defined]
        average = self.safe_string(order, "average_price")  # type: ignore[attr-defined]
        return self.safe_order({  # type: ignore[attr-defined, no-any-return]
            "id": self.safe_string(order, "order_id"),  # type: ignore[attr-defined]
            "clientOrderId": self.safe_string(order, "client_order_id"),  # type: ignore[attr-defined]
            "timestamp": timestamp, "datetime": self.iso8601(timestamp),  # type: ignore[attr-defined]
            "lastTradeTimestamp": None,
            "lastUpdateTimestamp": self.parse8601(self.safe_string(order, "updated_at")),  # type: ignore[attr-defined]
            "symbol": market["symbol"], "type": self.safe_string(order, "type"),  # type: ignore[attr-defined]
            "timeInForce": tif, "postOnly": self.safe_bool(order, "post_only"),  # type: ignore[attr-defined]
            "side": self.safe_string(order, "side"), "price": self.safe_string(order, "price"),  # type: ignore[attr-defined]
            "triggerPrice": None, "amount": self.safe_string(order, "quantity"),  # type: ignore[attr-defined]
            "cost": Precise.string_mul(filled, average) if filled and average else None,
            "average": average, "filled": filled,
            "remaining": self.safe_string(order, "remaining_quantity"),  # type: ignore[attr-defined]
            "status": ORDER_STATUS.get(status or "", status), "fee": None, "trades": None,
            "reduceOnly": None, "info": order,
        }, market)

    def parse_balance(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {"info": rows}
        for row in rows:
            code = self.safe_currency_code(self.safe_string(row, "asset"))  # type: ignore[attr-defined]
            account = self.account()  # type: ignore[attr-defined]
            account["free"] = self.safe_string(row, "available")  # type: ignore[attr-defined]
            account["used"] = self.safe_string(row, "locked")  # type: ignore[attr-defined]
            account["total"] = self.safe_string(row, "total")  # type: ignore[attr-defined]
            result[code] = account
        return self.safe_balance(result)  # type: ignore[attr-defined, no-any-return]

    def parse_position(self, position: dict[str, Any], market: Any = None) -> dict[str, Any]:
        market = self.safe_market(self.safe_string(position, "market"), market)  # type: ignore[attr-defined]
        net = self.safe_string(position, "net_quantity", "0")  # type: ignore[attr-defined]
        side = "long" if Precise.string_gt(net, "0") else ("short" if Precise.string_lt(net, "0") else None)
        mark = self.safe_string(position, "mark_price")  # type: ignore[attr-defined]
        return self.safe_position({  # type: ignore[attr-defined, no-any-return]
            "info": position, "id": None, "symbol": market["symbol"], "timestamp": None, "datetime": None,
            "side": side, "contracts": self.parse_number(Precise.string_abs(net)),  # type: ignore[attr-defined]
            "contractSize": 1, "entryPrice": self.safe_number(position, "average_entry_price"),  # type: ignore[attr-defined]
            "markPrice": self.parse_number(mark) if mark else None,  # type: ignore[attr-defined]
            "notional": self.parse_number(Precise.string_mul(Precise.string_abs(net), mark)) if mark else None,  # type: ignore[attr-defined]
            "unrealizedPnl": self.safe_number(position, "unrealized_pnl"),  # type: ignore[attr-defined]
            "realizedPnl": self.safe_number(position, "realized_pnl"),  # type: ignore[attr-defined]
            "leverage": 1, "marginMode": None, "hedged": False,  # spot holdings: no margin "collateral": None, "initialMargin": None,
            "maintenanceMargin": None, "maintenanceMarginPercentage": None, "liquidationPrice": None,
            "percentage": None, "marginRatio": None,
            "lastUpdateTimestamp": None, "lastPrice": None, "stopLossPrice": None, "takeProfitPrice": None,
        })

    def parse_ledger_entry(self, item: dict[str, Any], currency: Any = None) -> dict[str, Any]:
        amount = self.safe_string(item, "amount", "0")  # type: ignore[attr-defined]
        timestamp = self.parse8601(self.safe_string(item, "created_at"))  # type: ignore[attr-defined]
        code = self.safe_currency_code(self.safe_string(item, "asset"))  # type: ignore[attr-defined]
        return self.safe_ledger_entry({  # type: ignore[attr-defined, no-any-return]
            "info": item, "id": self.safe_string(item, "entry_id"), "timestamp": timestamp,  # type: ignore[attr-defined]
            "datetime": self.iso8601(timestamp), "direction": "in" if Precise.string_ge(amount, "0") else "out",  # type: ignore[attr-defined]
            "account": self.safe_string(item, "bucket"), "referenceId": self.safe_string(item, "reference"),  # type: ignore[attr-defined]
            "referenceAccount": None, "type": LEDGER_TYPES.get(self.safe_string(item, "kind") or "", "transaction"),  # type: ignore[attr-defined]
            "currency": code,
            "amount": self.parse_number(Precise.string_abs(amount)), "before": None, "after": None,  # type: ignore[attr-defined]
            "status": "ok", "fee": None,
        }, currency)

    # -- requests -----------------------------------------------------------------------------
    def order_request(self, symbol: str, type: str, side: str, amount: Any, price: Any,
                      params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The POST /orders body of ``create_order`` and the params left over."""
        market = self.market(symbol)  # type: ignore[attr-defined]
        request: dict[str, Any] = {"market": market["id"], "side": side, "type": type}
        client_order_id = self.safe_string_2(params, "clientOrderId", "client_order_id")  # type: ignore[attr-defined]
        if client_order_id is not None:
            request["client_order_id"] = client_order_id
        time_in_force = self.safe_string_upper_2(params, "timeInForce", "time_in_force")  # type: ignore[attr-defined]
        post_only = self.safe_bool_2(params, "postOnly", "post_only", False) or time_in_force == "PO"  # type: ignore[attr-defined]
        if post_only:
            if type != "limit":
                raise InvalidOrder(self.id + " postOnly orders must be limit orders")  # type: ignore[attr-defined]
            request["post_only"] = True
        if time_in_force and time_in_force != "PO":
            if time_in_force not in ("GTC", "IOC", "FOK"):
                raise InvalidOrder(self.id + " timeInForce is GTC, IOC, FOK or PO")  # type: ignore[attr-defined]
            request["time_in_force"] = time_in_force.lower()
        stp = self.safe_string(params, "stp")  # type: ignore[attr-defined]
        cost_param = self.safe_string(params, "cost")  # type: ignore[attr-defined]
        if stp is not None:
            request["stp"] = stp
        params = self.omit(params, ["clientOrderId", "client_order_id", "timeInForce", "time_in_force",  # type: ignore[attr-defined]
                                    "postOnly", "post_only", "stp", "cost"])
        if type == "limit":
            if price is None:
                raise InvalidOrder(self.id + " a limit order needs a price")  # type: ignore[attr-defined]
            request["price"] = self.price_to_precision(symbol, price)  # type: ignore[attr-defined]
            request["quantity"] = self.amount_to_precision(symbol, amount)  # type: ignore[attr-defined]
        elif type == "market" and side == "buy":
            if cost_param is not None:
                cost = cost_param
            elif price is not None:
                cost = Precise.string_mul(self.number_to_string(amount), self.number_to_string(price))  # type: ignore[attr-defined]
            elif not self.safe_bool(self.options, "createMarketBuyOrderRequiresPrice", True):  # type: ignore[attr-defined]
                cost = self.number_to_string(amount)  # type: ignore[attr-defined]
            else:
                raise InvalidOrder(self.id + " a market buy spends quote: pass price (cost = amount * price), "  # type: ignore[attr-defined]
                                   "params['cost'], or use create_market_buy_order_with_cost()")
            request["quote_quantity"] = self.cost_to_string(market, cost)
        elif type == "market":
            request["quantity"] = self.amount_to_precision(symbol, amount)  # type: ignore[attr-defined]
        else:
            raise InvalidOrder(self.id + " order type is limit or market")  # type: ignore[attr-defined]
        return request, params

    def cost_to_string(self, market: dict[str, Any], cost: str) -> str:
        """A quote amount rounded down to the price tick (the quote's smallest step on this market)."""
        tick = self.number_to_string(market["precision"]["price"])  # type: ignore[attr-defined]
        steps = Precise.string_div(cost, tick, 0)
        return str(Precise.string_mul(steps, tick))

    def sequence_is_new(self, channel: str, sequence: int) -> bool:
        """Private streams: true when ``sequence`` follows what this exchange object has seen."""
        sequences = self.options.setdefault("sequences", {})  # type: ignore[attr-defined]
        last = sequences.get(channel)
        if last is not None and sequence <= last:
            return False
        sequences[channel] = sequence
        return True

    def ws_auth_message(self) -> dict[str, Any]:
        timestamp, nonce = self.bourse_timestamp(), new_nonce()
        signature = self.bourse_signer().sign(signed_string(timestamp, nonce, "GET", "/ws/v1", "", b""))
        return {"op": "auth", "key": self.apiKey, "timestamp": timestamp, "nonce": nonce,  # type: ignore[attr-defined]
                "signature": signature}
