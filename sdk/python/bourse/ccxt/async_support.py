"""The ccxt exchange class for ``ccxt.async_support`` (``bourse.ccxt.async_support.bourse``): the
synchronous class of ``_sync.py`` with every request awaited."""
from __future__ import annotations

from typing import Any

import ccxt
import ccxt.async_support
from ccxt.base.errors import ArgumentsRequired

from ._common import BourseMixin, describe


class bourse(BourseMixin, ccxt.async_support.Exchange):  # noqa: N801 (ccxt names exchange classes by their id)
    """``bourse.ccxt.bourse({"apiKey": key_id, "secret": secret, "urls": {"api": "http://127.0.0.1:8000"}})``;
    an Ed25519 key: ``"secret": <base64 seed>, "options": {"signatureScheme": "ed25519"}``."""

    def describe(self) -> Any:
        return self.deep_extend(super().describe(), describe())

    async def _pages(self, path: str, api: str, params: dict[str, Any], limit: int | None = None) -> list[Any]:
        rows: list[Any] = []
        request = dict(params)
        while True:
            page_size = 1000 if limit is None else min(1000, max(1, limit - len(rows)))
            response = await self.request(path, api, "GET", self.extend(request, {"limit": page_size}))
            rows += response["results"]
            cursor = response.get("next_cursor")
            if not cursor or (limit is not None and len(rows) >= limit):
                return rows
            request["cursor"] = cursor

    async def fetch_time(self, params: Any = {}) -> Any:
        return self.safe_integer(await self.request("time", "public", "GET", params), "epoch_ms")

    async def fetch_markets(self, params: Any = {}) -> Any:
        return [self.parse_market(m) for m in await self._pages("markets", "public", params)]

    async def fetch_currencies(self, params: Any = {}) -> Any:
        return self.currencies_from_markets(await self._pages("markets", "public", params))

    async def fetch_ticker(self, symbol: str, params: Any = {}) -> Any:
        await self.load_markets()
        market = self.market(symbol)
        response = await self.request("markets/{symbol}/ticker", "public", "GET", self.extend({"symbol": market["id"]}, params))
        return self.parse_ticker(response, market)

    async def fetch_tickers(self, symbols: Any = None, params: Any = {}) -> Any:
        await self.load_markets()
        symbols = self.market_symbols(symbols) or list(self.markets.keys())
        return self.filter_by_array_tickers([await self.fetch_ticker(s, params) for s in symbols], "symbol", symbols)

    async def fetch_order_book(self, symbol: str, limit: Any = None, params: Any = {}) -> Any:
        await self.load_markets()
        market = self.market(symbol)
        request = {"symbol": market["id"]}
        if limit is not None:
            request["depth"] = limit
        response = await self.request("markets/{symbol}/book", "public", "GET", self.extend(request, params))
        book = self.parse_order_book(response, market["symbol"])
        book["nonce"] = self.safe_integer(response, "sequence")
        return book

    async def fetch_trades(self, symbol: str, since: Any = None, limit: Any = None, params: Any = {}) -> Any:
        await self.load_markets()
        market = self.market(symbol)
        rows = await self._pages("markets/{symbol}/trades", "public", self.extend({"symbol": market["id"]}, params),
                           None if since is not None else limit)
        return self.parse_trades(rows, market, since, limit)

    async def fetch_ohlcv(self, symbol: str, timeframe: str = "1m", since: Any = None, limit: Any = None,
                    params: Any = {}) -> Any:
        raise ccxt.NotSupported(self.id + " fetchOHLCV() is not supported: Bourse has no candles endpoint yet")

    async def fetch_balance(self, params: Any = {}) -> Any:
        return self.parse_balance(await self._pages("balances", "private", params))

    async def fetch_trading_fees(self, params: Any = {}) -> Any:
        await self.load_markets()
        return {symbol: {"info": m["info"], "symbol": symbol, "maker": m["maker"], "taker": m["taker"],
                         "percentage": True, "tierBased": False} for symbol, m in self.markets.items()}

    async def fetch_trading_fee(self, symbol: str, params: Any = {}) -> Any:
        return (await self.fetch_trading_fees(params))[self.market(symbol)["symbol"]]

    async def create_order(self, symbol: str, type: str, side: str, amount: Any, price: Any = None, params: Any = {}) -> Any:
        await self.load_markets()
        request, params = self.order_request(symbol, type, side, amount, price, params)
        response = await self.request("orders", "private", "POST", self.extend(request, params))
        return self.parse_order(response, self.market(symbol))

    async def create_market_buy_order_with_cost(self, symbol: str, cost: Any, params: Any = {}) -> Any:
        return await self.create_order(symbol, "market", "buy", None, None, self.extend(params, {"cost": cost}))

    async def cancel_order(self, id: str, symbol: Any = None, params: Any = {}) -> Any:
        await self.load_markets()
        response = await self.request("orders/{order_id}", "private", "DELETE", self.extend({"order_id": id}, params))
        return self.parse_order(response)

    async def cancel_all_orders(self, symbol: Any = None, params: Any = {}) -> Any:
        await self.load_markets()
        request = {}
        market = None
        if symbol is not None:
            market = self.market(symbol)
            request["market"] = market["id"]
        response = await self.request("orders", "private", "DELETE", self.extend(request, params))
        return [self.safe_order({"id": order_id, "status": "canceled", "info": {"order_id": order_id}}, market)
                for order_id in response["cancelled"]]

    async def fetch_order(self, id: Any, symbol: Any = None, params: Any = {}) -> Any:
        await self.load_markets()
        client_order_id = self.safe_string_2(params, "clientOrderId", "client_order_id")
        if client_order_id is not None:
            response = await self.request("orders/by-client-id/{client_order_id}", "private", "GET",
                                    {"client_order_id": client_order_id})
        elif id is None:
            raise ArgumentsRequired(self.id + " fetchOrder() needs an id or params['clientOrderId']")
        else:
            response = await self.request("orders/{order_id}", "private", "GET", self.extend({"order_id": id}, params))
        return self.parse_order(response)

    async def _orders(self, status: str, symbol: Any, since: Any, limit: Any, params: Any) -> Any:
        await self.load_markets()
        request = {"status": status}
        market = None
        if symbol is not None:
            market = self.market(symbol)
            request["market"] = market["id"]
        rows = await self._pages("orders", "private", self.extend(request, params), None if since is not None else limit)
        return self.parse_orders(rows, market, since, limit)

    async def fetch_orders(self, symbol: Any = None, since: Any = None, limit: Any = None, params: Any = {}) -> Any:
        return await self._orders("all", symbol, since, limit, params)

    async def fetch_open_orders(self, symbol: Any = None, since: Any = None, limit: Any = None, params: Any = {}) -> Any:
        return await self._orders("open", symbol, since, limit, params)

    async def fetch_closed_orders(self, symbol: Any = None, since: Any = None, limit: Any = None, params: Any = {}) -> Any:
        return await self._orders("closed", symbol, since, limit, params)

    async def fetch_my_trades(self, symbol: Any = None, since: Any = None, limit: Any = None, params: Any = {}) -> Any:
        await self.load_markets()
        request = {}
        market = None
        if symbol is not None:
            market = self.market(symbol)
            request["market"] = market["id"]
        rows = await self._pages("fills", "private", self.extend(request, params), None if since is not None else limit)
        return self.parse_trades(rows, market, since, limit)

    async def fetch_order_trades(self, id: str, symbol: Any = None, since: Any = None, limit: Any = None,
                           params: Any = {}) -> Any:
        return await self.fetch_my_trades(symbol, since, limit, self.extend({"order_id": id}, params))

    async def fetch_positions(self, symbols: Any = None, params: Any = {}) -> Any:
        await self.load_markets()
        response = await self.request("positions", "private", "GET", params)
        positions = [self.parse_position(p) for p in response["results"]]
        wanted = self.market_symbols(symbols)
        return [p for p in positions if wanted is None or p["symbol"] in wanted]

    async def fetch_ledger(self, code: Any = None, since: Any = None, limit: Any = None, params: Any = {}) -> Any:
        await self.load_markets()
        request = {}
        currency = None
        if code is not None:
            currency = self.currency(code)
            request["asset"] = currency["id"]
        rows = await self._pages("ledger", "private", self.extend(request, params), None if since is not None else limit)
        return self.parse_ledger(rows, currency, since, limit)
