"""The ccxt.pro class (``bourse.ccxt.pro.bourse``): the async class plus WebSocket streams.

Books are kept from ``book:{symbol}`` snapshots and updates by sequence (a gap, or a checksum
mismatch when frames carry one, drops the book and resubscribes for a new snapshot). The
private ``orders``, ``fills`` and ``balances`` channels remember the last sequence seen; a new
connection subscribes with ``since`` so nothing is missed or repeated across reconnects."""
from __future__ import annotations

import asyncio
from typing import Any

from ccxt.async_support.base.ws.cache import ArrayCache, ArrayCacheBySymbolById
from ccxt.base.errors import ExchangeError

from ..ws import book_checksum
from ._common import EXACT_ERRORS
from .async_support import bourse as bourse_async

PRIVATE = ("orders", "fills", "balances")


class bourse(bourse_async):  # noqa: N801
    balance: Any
    orders: Any
    myTrades: Any

    def describe(self) -> Any:
        return self.deep_extend(super().describe(), {
            "has": {"ws": True, "watchOrderBook": True, "watchTrades": True, "watchOrders": True,
                    "watchBalance": True, "watchMyTrades": True, "watchTicker": True, "watchTickers": False,
                    "watchOHLCV": False, "watchOrderBookForSymbols": False, "watchTradesForSymbols": False,
                    "createOrderWs": False, "cancelOrderWs": False},
            "options": {"tradesLimit": 1000, "ordersLimit": 1000},
            "streaming": {"keepAlive": 20000},
        })

    # -- plumbing -------------------------------------------------------------------------------
    def _request_id(self) -> int:
        self.options["wsRequestId"] = self.safe_integer(self.options, "wsRequestId", 0) + 1
        return int(self.options["wsRequestId"])

    async def _authenticate(self, url: str) -> Any:
        """Signs in once per connection; the future stays in the client's subscriptions, so later
        private watches on the same connection await the same (resolved) answer."""
        self.check_required_credentials()
        client = self.client(url)
        message_hash = "authenticated"
        future = self.safe_value(client.subscriptions, message_hash)
        if future is None or future is True:
            request = {**self.ws_auth_message(), "id": self._request_id()}
            self.options.setdefault("wsRequests", {})[request["id"]] = message_hash
            future = self.watch(url, message_hash, request, message_hash)
            client.subscriptions[message_hash] = future
        return await future

    def _subscribe_message(self, channel: str) -> dict[str, Any]:
        request: dict[str, Any] = {"op": "subscribe", "channels": [channel], "id": self._request_id()}
        last = self.safe_dict(self.options, "sequences", {}).get(channel)
        if channel in PRIVATE and last is not None:
            request["since"] = {channel: last}
        self.options.setdefault("wsRequests", {})[request["id"]] = "subscribe:" + channel
        return request

    async def _watch_channel(self, channel: str, message_hash: str, private: bool = False) -> Any:
        url = self.bourse_ws_url()
        if private:
            await self._authenticate(url)
        client = self.client(url)
        subscribe = None if channel in client.subscriptions else self._subscribe_message(channel)
        return await self.watch(url, message_hash, subscribe, channel)

    def _resubscribe(self, client: Any, channel: str) -> None:
        if channel in client.subscriptions:
            del client.subscriptions[channel]
        unsubscribe = {"op": "unsubscribe", "channels": [channel], "id": self._request_id()}
        subscribe = self._subscribe_message(channel)
        client.subscriptions[channel] = True

        async def send() -> None:
            await client.send(unsubscribe)
            await client.send(subscribe)

        asyncio.ensure_future(send())

    # -- unified watch methods ------------------------------------------------------------------
    async def watch_order_book(self, symbol: str, limit: Any = None, params: Any = {}) -> Any:
        await self.load_markets()
        market = self.market(symbol)
        orderbook = await self._watch_channel("book:" + market["id"], "orderbook:" + market["symbol"])
        return orderbook.limit()

    async def watch_trades(self, symbol: str, since: Any = None, limit: Any = None, params: Any = {}) -> Any:
        await self.load_markets()
        market = self.market(symbol)
        trades = await self._watch_channel("trades:" + market["id"], "trades:" + market["symbol"])
        if self.newUpdates:
            limit = trades.getLimit(market["symbol"], limit)
        return self.filter_by_since_limit(trades, since, limit, "timestamp", True)

    async def watch_ticker(self, symbol: str, params: Any = {}) -> Any:
        await self.load_markets()
        market = self.market(symbol)
        return await self._watch_channel("ticker:" + market["id"], "ticker:" + market["symbol"])

    async def watch_orders(self, symbol: Any = None, since: Any = None, limit: Any = None, params: Any = {}) -> Any:
        await self.load_markets()
        orders = await self._watch_channel("orders", "orders", private=True)
        if self.newUpdates:
            limit = orders.getLimit(symbol, limit)
        return self.filter_by_symbol_since_limit(orders, symbol, since, limit, True)

    async def watch_my_trades(self, symbol: Any = None, since: Any = None, limit: Any = None,
                              params: Any = {}) -> Any:
        await self.load_markets()
        trades = await self._watch_channel("fills", "myTrades", private=True)
        if self.newUpdates:
            limit = trades.getLimit(symbol, limit)
        return self.filter_by_symbol_since_limit(trades, symbol, since, limit, True)

    async def watch_balance(self, params: Any = {}) -> Any:
        await self.load_markets()
        if not self.balance:
            # Events carry one asset each: start from the full REST balance.
            self.balance = await self.fetch_balance()
        return await self._watch_channel("balances", "balance", private=True)

    # -- frames ---------------------------------------------------------------------------------
    def handle_message(self, client: Any, message: Any) -> None:
        kind = self.safe_string(message, "type")
        channel = self.safe_string(message, "channel", "")
        if kind == "error":
            self._handle_error(client, message)
        elif kind == "auth":
            client.resolve(message, "authenticated")
        elif kind in ("snapshot", "update") and channel.startswith("book:"):
            self._handle_book(client, message)
        elif kind == "trade":
            self._handle_trade(client, message)
        elif kind == "ticker":
            ticker = self.parse_ticker(message["data"])
            self.tickers[ticker["symbol"]] = ticker
            client.resolve(ticker, "ticker:" + ticker["symbol"])
        elif channel in PRIVATE:
            self._handle_private(client, message)

    def _handle_error(self, client: Any, message: dict[str, Any]) -> None:
        code = self.safe_string(message, "code")
        error = EXACT_ERRORS.get(code or "", ExchangeError)(self.id + " " + self.json(message))
        channel = self.safe_string(message, "channel")
        if code == "resync_required" and channel is not None:
            if channel in PRIVATE and self.safe_integer(message, "last") is not None:
                # The server no longer has what we missed: start over from the REST state.
                self.options["sequences"].pop(channel, None)
            self._resubscribe(client, channel)
            return
        target = self.safe_dict(self.options, "wsRequests", {}).pop(self.safe_integer(message, "id"), None)
        if target == "authenticated":
            client.subscriptions.pop("authenticated", None)
            client.reject(error, "authenticated")
        elif target is not None and target.startswith("subscribe:"):
            name = target[len("subscribe:"):]
            client.subscriptions.pop(name, None)
            client.reject(error)
        else:
            client.reject(error)

    def _handle_book(self, client: Any, message: dict[str, Any]) -> None:
        channel = message["channel"]
        market = self.safe_market(message.get("market") or channel[5:])
        symbol = market["symbol"]
        sequence = self.safe_integer(message, "sequence")
        if message["type"] == "snapshot":
            snapshot = self.parse_order_book(message, symbol)
            snapshot["nonce"] = sequence
            self.orderbooks[symbol] = self.order_book(snapshot)
            book = self.orderbooks[symbol]
        else:
            book = self.safe_value(self.orderbooks, symbol)
            if book is None or book["nonce"] is None:
                return  # waiting for the snapshot after a resubscription
            if sequence != book["nonce"] + 1:
                del self.orderbooks[symbol]
                self._resubscribe(client, channel)
                return
            for side in ("bids", "asks"):
                for price, amount in message[side]:
                    book[side].store(self.parse_number(price), self.parse_number(amount))
            book["nonce"] = sequence
        if message.get("checksum") is not None:
            levels = {side: [[self.number_to_string(p), self.number_to_string(q)] for p, q in book[side][:25]]
                      for side in ("bids", "asks")}
            raw = self._raw_levels(message, levels)
            if raw is not None and book_checksum(raw["bids"], raw["asks"]) != int(message["checksum"]):
                del self.orderbooks[symbol]
                self._resubscribe(client, channel)
                return
        client.resolve(book, "orderbook:" + symbol)

    def _raw_levels(self, message: dict[str, Any], levels: dict[str, Any]) -> Any:
        """The top levels as the server's wire strings, kept per symbol beside the ccxt book."""
        raw = self.options.setdefault("rawBooks", {})
        channel = message["channel"]
        if message["type"] == "snapshot":
            raw[channel] = {side: {p: q for p, q in message[side]} for side in ("bids", "asks")}
        else:
            book = raw.get(channel)
            if book is None:
                return None
            for side in ("bids", "asks"):
                for price, quantity in message[side]:
                    if self.parse_number(quantity) == 0:
                        book[side].pop(price, None)
                    else:
                        book[side][price] = quantity
        book = raw[channel]
        bids = sorted(book["bids"].items(), key=lambda kv: self.parse_number(kv[0]), reverse=True)[:25]
        asks = sorted(book["asks"].items(), key=lambda kv: self.parse_number(kv[0]))[:25]
        return {"bids": [list(kv) for kv in bids], "asks": [list(kv) for kv in asks]}

    def _handle_trade(self, client: Any, message: dict[str, Any]) -> None:
        trade = self.parse_trade(message["data"])
        symbol = trade["symbol"]
        stored = self.safe_value(self.trades, symbol)
        if stored is None:
            stored = ArrayCache(self.safe_integer(self.options, "tradesLimit", 1000))
            self.trades[symbol] = stored
        stored.append(trade)
        client.resolve(stored, "trades:" + symbol)

    def _handle_private(self, client: Any, message: dict[str, Any]) -> None:
        channel = message["channel"]
        sequence = self.safe_integer(message, "sequence")
        if sequence is not None and not self.sequence_is_new(channel, sequence):
            return  # a replayed event this object already processed
        data = message["data"]
        if channel == "orders":
            if self.orders is None:
                self.orders = ArrayCacheBySymbolById(self.safe_integer(self.options, "ordersLimit", 1000))
            self.orders.append(self.parse_order(data))
            client.resolve(self.orders, "orders")
        elif channel == "fills":
            if self.myTrades is None:
                self.myTrades = ArrayCacheBySymbolById(self.safe_integer(self.options, "tradesLimit", 1000))
            self.myTrades.append(self.parse_trade(data))
            client.resolve(self.myTrades, "myTrades")
        else:
            code = self.safe_currency_code(self.safe_string(data, "asset"))
            account = self.account()
            account["free"] = self.safe_string(data, "available")
            account["used"] = self.safe_string(data, "locked")
            account["total"] = self.safe_string(data, "total")
            self.balance[code] = account
            self.balance = self.safe_balance(self.balance)
            client.resolve(self.balance, "balance")
