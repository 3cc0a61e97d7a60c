"""The REST client, synchronous (``Client``) and asynchronous (``AsyncClient``), over httpx.

Every operation of docs/openapi.yaml is a method (``OPERATIONS`` maps each operationId to its
method; a test checks the table against the spec). Private requests are signed; lists have a
page method and an ``iter_*`` cursor iterator; refusals raise ``BourseError``."""
from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from ._signing import Signer, auth_headers, signer_for
from .errors import BourseError
from .models import (
    Account,
    Balance,
    Book,
    CancelAll,
    Fill,
    LedgerEntry,
    Market,
    Model,
    Order,
    OrderType,
    Page,
    Position,
    ServerTime,
    Side,
    Stp,
    Ticker,
    TimeInForce,
    Trade,
)
from .ratelimit import RateLimit, parse_rate_limit

__all__ = ["Client", "AsyncClient", "OPERATIONS", "RetryPolicy"]

M = TypeVar("M", bound=Model)

# operationId -> (HTTP method, path template, client method, signed)
OPERATIONS: dict[str, tuple[str, str, str, bool]] = {
    "time_get": ("GET", "/api/v1/time", "time", False),
    "markets_list": ("GET", "/api/v1/markets", "markets", False),
    "markets_get": ("GET", "/api/v1/markets/{symbol}", "market", False),
    "markets_book": ("GET", "/api/v1/markets/{symbol}/book", "book", False),
    "markets_ticker": ("GET", "/api/v1/markets/{symbol}/ticker", "ticker", False),
    "markets_trades": ("GET", "/api/v1/markets/{symbol}/trades", "trades", False),
    "account_get": ("GET", "/api/v1/account", "account", True),
    "balances_list": ("GET", "/api/v1/balances", "balances", True),
    "positions_list": ("GET", "/api/v1/positions", "positions", True),
    "orders_list": ("GET", "/api/v1/orders", "orders", True),
    "orders_submit": ("POST", "/api/v1/orders", "place_order", True),
    "orders_cancel_all": ("DELETE", "/api/v1/orders", "cancel_all_orders", True),
    "orders_get": ("GET", "/api/v1/orders/{order_id}", "order", True),
    "orders_cancel": ("DELETE", "/api/v1/orders/{order_id}", "cancel_order", True),
    "orders_amend": ("PATCH", "/api/v1/orders/{order_id}", "amend_order", True),
    "orders_cancel_by_client_id": ("DELETE", "/api/v1/orders/by-client-id/{client_order_id}",
                                   "cancel_order_by_client_id", True),
    "orders_get_by_client_id": ("GET", "/api/v1/orders/by-client-id/{client_order_id}", "order_by_client_id", True),
    "fills_list": ("GET", "/api/v1/fills", "fills", True),
    "ledger_list": ("GET", "/api/v1/ledger", "ledger", True),
}

_RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of requests that are safe to repeat: GETs, and ``POST /orders`` only when it
    carries a ``client_order_id`` (a resubmission returns the existing order, never a second one).
    An order without ``client_order_id`` is never retried: after a timeout nobody can tell
    whether it was accepted. Retried: connection errors, 429 (after ``Retry-After``, if at most
    ``max_wait_s``), 502, 503, 504. A ``timestamp_out_of_window`` refusal is retried once, for
    any request, after adopting the server's clock from the refusal (it was not executed).
    Cancels are sent once (a repeat after a lost answer would report ``order_closed``)."""

    max_retries: int = 2
    backoff_s: float = 0.25
    max_wait_s: float = 10.0


@dataclass
class _Request:
    op: str
    method: str
    path: str
    query: str
    body: bytes
    signed: bool
    retryable: bool


class _Core:
    def __init__(self, base_url: str, key: str | None = None, secret: str | None = None,
                 private_key: str | bytes | None = None, *, timeout: float = 10.0,
                 retry: RetryPolicy | None = None, window_ms: int | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self._signer: Signer | None = None
        if secret is not None or private_key is not None:
            if not key:
                raise ValueError("a key id is required with a secret or private key")
            self._signer = signer_for(secret=secret, private_key=private_key)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.window_ms = window_ms
        #: milliseconds to add to the local clock to get the server's (see ``sync_clock``)
        self.clock_offset_ms = 0
        #: the RateLimit fields of the last response that carried them
        self.rate_limit: RateLimit | None = None

    @property
    def scheme(self) -> str | None:
        return self._signer.scheme if self._signer else None

    def _request(self, op: str, path_params: Mapping[str, str] | None = None,
                 query: Mapping[str, Any] | None = None, body: Mapping[str, Any] | None = None) -> _Request:
        method, template, _, signed = OPERATIONS[op]
        path = template
        for name, value in (path_params or {}).items():
            path = path.replace("{" + name + "}", urllib.parse.quote(str(value), safe=""))
        pairs = [(k, _query_value(v)) for k, v in (query or {}).items() if v is not None]
        query_string = urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)
        raw = b"" if body is None else json.dumps({k: v for k, v in body.items() if v is not None},
                                                   separators=(",", ":")).encode()
        retryable = method == "GET" or bool(body and body.get("client_order_id"))
        if signed and self._signer is None:
            raise ValueError(f"{OPERATIONS[op][2]}() needs credentials: pass key and secret (or private_key)")
        return _Request(op, method, path, query_string, raw, signed, retryable)

    def _url(self, req: _Request) -> str:
        return self.base_url + req.path + ("?" + req.query if req.query else "")

    def _headers(self, req: _Request) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "bourse-sdk-python/0.1"}
        if req.body:
            headers["Content-Type"] = "application/json"
        if req.signed:
            assert self._signer is not None and self.key is not None
            headers.update(auth_headers(self._signer, self.key, req.method, req.path, req.query, req.body,
                                        timestamp_ms=int(time.time() * 1000) + self.clock_offset_ms,
                                        window_ms=self.window_ms))
        return headers

    def _outcome(self, req: _Request, response: httpx.Response, attempt: int, skew_retried: bool
                 ) -> tuple[Any, float | None, bool]:
        """(json body, None, _) on success; raises BourseError when final; else (None, delay, skew)."""
        rate_limit = parse_rate_limit(response.headers.get("RateLimit-Policy"), response.headers.get("RateLimit"))
        if rate_limit is not None:
            self.rate_limit = rate_limit
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = response.text
        if response.status_code < 400:
            return body, None, skew_retried
        retry_after = _retry_after(response)
        error = BourseError.from_problem(response.status_code, body, retry_after)
        if error.code == "timestamp_out_of_window" and not skew_retried and "server_epoch_ms" in error.problem:
            self.clock_offset_ms = int(error.problem["server_epoch_ms"]) - int(time.time() * 1000)
            return None, 0.0, True
        if error.code == "replay_guard_reset" and req.retryable and attempt < self.retry.max_retries:
            return None, 0.0, skew_retried  # the server's replay store restarted: sign afresh, once more
        if req.retryable and response.status_code in _RETRY_STATUSES and attempt < self.retry.max_retries:
            delay: float = retry_after if retry_after is not None else self.retry.backoff_s * float(2 ** attempt)
            if delay <= self.retry.max_wait_s:
                return None, delay, skew_retried
        raise error

    def _transport_delay(self, req: _Request, attempt: int) -> float | None:
        if req.retryable and attempt < self.retry.max_retries:
            return self.retry.backoff_s * float(2 ** attempt)
        return None

    @staticmethod
    def _page(model: type[M], body: Any) -> Page[M]:
        return Page([model.from_wire(row) for row in body["results"]], body.get("next_cursor"))

    def _offset_from(self, t0_ms: float, t1_ms: float, server: ServerTime) -> int:
        self.clock_offset_ms = round(server.epoch_ms - (t0_ms + t1_ms) / 2)
        return self.clock_offset_ms


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _order_body(market: str, side: Side, type: OrderType, quantity: str | None, price: str | None,
                quote_quantity: str | None, time_in_force: TimeInForce | None, post_only: bool | None,
                client_order_id: str | None, stp: Stp | None, stop_price: str | None = None,
                expire_time: str | None = None) -> dict[str, Any]:
    _decimal_strings(quantity=quantity, price=price, quote_quantity=quote_quantity, stop_price=stop_price)
    return {"market": market, "side": side, "type": type, "quantity": quantity, "price": price,
            "quote_quantity": quote_quantity, "time_in_force": time_in_force, "post_only": post_only,
            "client_order_id": client_order_id, "stp": stp, "stop_price": stop_price, "expire_time": expire_time}


def _decimal_strings(**values: str | None) -> None:
    for name, value in values.items():
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name} must be a decimal string such as '0.0100' (got {type_name(value)})")


def _amend_body(price: str | None, quantity: str | None, client_order_id: str | None) -> dict[str, Any]:
    _decimal_strings(price=price, quantity=quantity)
    body = {"price": price, "quantity": quantity, "client_order_id": client_order_id}
    return {name: value for name, value in body.items() if value is not None}


def type_name(value: object) -> str:
    return type(value).__name__


class Client(_Core):
    """Synchronous client. ``Client(url)`` for market data; add ``key`` and ``secret`` (HMAC) or
    ``private_key`` (Ed25519 seed, base64) for the private endpoints. Use as a context manager
    or call ``close()``."""

    def __init__(self, base_url: str, key: str | None = None, secret: str | None = None,
                 private_key: str | bytes | None = None, *, timeout: float = 10.0,
                 retry: RetryPolicy | None = None, window_ms: int | None = None,
                 http: httpx.Client | None = None) -> None:
        super().__init__(base_url, key, secret, private_key, timeout=timeout, retry=retry, window_ms=window_ms)
        self._http = http or httpx.Client(timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, op: str, path_params: Mapping[str, str] | None = None,
              query: Mapping[str, Any] | None = None, body: Mapping[str, Any] | None = None) -> Any:
        req = self._request(op, path_params, query, body)
        attempt, skew = 0, False
        while True:
            try:
                response = self._http.request(req.method, self._url(req), content=req.body or None,
                                              headers=self._headers(req))
            except httpx.TransportError:
                delay = self._transport_delay(req, attempt)
                if delay is None:
                    raise
            else:
                result, delay, skew_now = self._outcome(req, response, attempt, skew)
                if delay is None:
                    return result
                if skew_now and not skew:
                    skew = True
                    continue
            time.sleep(delay)
            attempt += 1

    def _iterate(self, fetch: Callable[[str | None], Page[M]]) -> Iterator[M]:
        cursor: str | None = None
        while True:
            page = fetch(cursor)
            yield from page.results
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    # -- market data -------------------------------------------------------------------------
    def time(self) -> ServerTime:
        return ServerTime.from_wire(self._call("time_get"))

    def sync_clock(self) -> int:
        """Measures the server clock's offset from ``GET /time`` (half the round trip accounted)
        and signs with it from now on; returns the offset in ms."""
        t0 = time.time() * 1000
        server = self.time()
        return self._offset_from(t0, time.time() * 1000, server)

    def markets(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Market]:
        return self._page(Market, self._call("markets_list", query={"limit": limit, "cursor": cursor}))

    def iter_markets(self, *, limit: int | None = None) -> Iterator[Market]:
        return self._iterate(lambda c: self.markets(limit=limit, cursor=c))

    def market(self, symbol: str) -> Market:
        return Market.from_wire(self._call("markets_get", {"symbol": symbol}))

    def book(self, symbol: str, depth: int | None = None) -> Book:
        return Book.from_wire(self._call("markets_book", {"symbol": symbol}, {"depth": depth}))

    def ticker(self, symbol: str) -> Ticker:
        return Ticker.from_wire(self._call("markets_ticker", {"symbol": symbol}))

    def trades(self, symbol: str, *, limit: int | None = None, cursor: str | None = None) -> Page[Trade]:
        return self._page(Trade, self._call("markets_trades", {"symbol": symbol}, {"limit": limit, "cursor": cursor}))

    def iter_trades(self, symbol: str, *, limit: int | None = None) -> Iterator[Trade]:
        return self._iterate(lambda c: self.trades(symbol, limit=limit, cursor=c))

    # -- account -----------------------------------------------------------------------------
    def account(self) -> Account:
        return Account.from_wire(self._call("account_get"))

    def balances(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Balance]:
        return self._page(Balance, self._call("balances_list", query={"limit": limit, "cursor": cursor}))

    def iter_balances(self, *, limit: int | None = None) -> Iterator[Balance]:
        return self._iterate(lambda c: self.balances(limit=limit, cursor=c))

    def positions(self) -> list[Position]:
        return [Position.from_wire(row) for row in self._call("positions_list")["results"]]

    def fills(self, *, market: str | None = None, order_id: str | None = None, limit: int | None = None,
              cursor: str | None = None) -> Page[Fill]:
        return self._page(Fill, self._call("fills_list", query={"market": market, "order_id": order_id,
                                                                "limit": limit, "cursor": cursor}))

    def iter_fills(self, *, market: str | None = None, order_id: str | None = None,
                   limit: int | None = None) -> Iterator[Fill]:
        return self._iterate(lambda c: self.fills(market=market, order_id=order_id, limit=limit, cursor=c))

    def ledger(self, *, asset: str | None = None, limit: int | None = None,
               cursor: str | None = None) -> Page[LedgerEntry]:
        return self._page(LedgerEntry, self._call("ledger_list", query={"asset": asset, "limit": limit, "cursor": cursor}))

    def iter_ledger(self, *, asset: str | None = None, limit: int | None = None) -> Iterator[LedgerEntry]:
        return self._iterate(lambda c: self.ledger(asset=asset, limit=limit, cursor=c))

    # -- orders ------------------------------------------------------------------------------
    def place_order(self, market: str, side: Side, type: OrderType, *, quantity: str | None = None,
                    price: str | None = None, quote_quantity: str | None = None,
                    time_in_force: TimeInForce | None = None, post_only: bool | None = None,
                    client_order_id: str | None = None, stp: Stp | None = None, stop_price: str | None = None,
                    expire_time: str | None = None) -> Order:
        """``POST /orders``. Retried on a lost connection or 503 only with ``client_order_id``."""
        body = _order_body(market, side, type, quantity, price, quote_quantity, time_in_force, post_only,
                           client_order_id, stp, stop_price, expire_time)
        return Order.from_wire(self._call("orders_submit", body=body))

    def orders(self, *, market: str | None = None, status: str | None = None, limit: int | None = None,
               cursor: str | None = None) -> Page[Order]:
        return self._page(Order, self._call("orders_list", query={"market": market, "status": status,
                                                                  "limit": limit, "cursor": cursor}))

    def iter_orders(self, *, market: str | None = None, status: str | None = None,
                    limit: int | None = None) -> Iterator[Order]:
        return self._iterate(lambda c: self.orders(market=market, status=status, limit=limit, cursor=c))

    def order(self, order_id: str) -> Order:
        return Order.from_wire(self._call("orders_get", {"order_id": order_id}))

    def order_by_client_id(self, client_order_id: str) -> Order:
        return Order.from_wire(self._call("orders_get_by_client_id", {"client_order_id": client_order_id}))

    def cancel_order(self, order_id: str) -> Order:
        return Order.from_wire(self._call("orders_cancel", {"order_id": order_id}))

    def amend_order(self, order_id: str, *, price: str | None = None, quantity: str | None = None,
                    client_order_id: str | None = None) -> Order:
        """``PATCH /orders/{order_id}``: ``quantity`` is the new total quantity."""
        return Order.from_wire(self._call("orders_amend", {"order_id": order_id},
                                          body=_amend_body(price, quantity, client_order_id)))

    def cancel_order_by_client_id(self, client_order_id: str) -> Order:
        return Order.from_wire(self._call("orders_cancel_by_client_id", {"client_order_id": client_order_id}))

    def cancel_all_orders(self, market: str | None = None) -> CancelAll:
        return CancelAll.from_wire(self._call("orders_cancel_all", query={"market": market}))


class AsyncClient(_Core):
    """The asynchronous twin of ``Client`` (same methods, awaited; ``iter_*`` are async iterators)."""

    def __init__(self, base_url: str, key: str | None = None, secret: str | None = None,
                 private_key: str | bytes | None = None, *, timeout: float = 10.0,
                 retry: RetryPolicy | None = None, window_ms: int | None = None,
                 http: httpx.AsyncClient | None = None) -> None:
        super().__init__(base_url, key, secret, private_key, timeout=timeout, retry=retry, window_ms=window_ms)
        self._http = http or httpx.AsyncClient(timeout=timeout)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, op: str, path_params: Mapping[str, str] | None = None,
                    query: Mapping[str, Any] | None = None, body: Mapping[str, Any] | None = None) -> Any:
        req = self._request(op, path_params, query, body)
        attempt, skew = 0, False
        while True:
            try:
                response = await self._http.request(req.method, self._url(req), content=req.body or None,
                                                    headers=self._headers(req))
            except httpx.TransportError:
                delay = self._transport_delay(req, attempt)
                if delay is None:
                    raise
            else:
                result, delay, skew_now = self._outcome(req, response, attempt, skew)
                if delay is None:
                    return result
                if skew_now and not skew:
                    skew = True
                    continue
            await asyncio.sleep(delay)
            attempt += 1

    async def _iterate(self, fetch: Callable[[str | None], Any]) -> AsyncIterator[Any]:
        cursor: str | None = None
        while True:
            page = await fetch(cursor)
            for row in page.results:
                yield row
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def time(self) -> ServerTime:
        return ServerTime.from_wire(await self._call("time_get"))

    async def sync_clock(self) -> int:
        t0 = time.time() * 1000
        server = await self.time()
        return self._offset_from(t0, time.time() * 1000, server)

    async def markets(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Market]:
        return self._page(Market, await self._call("markets_list", query={"limit": limit, "cursor": cursor}))

    def iter_markets(self, *, limit: int | None = None) -> AsyncIterator[Market]:
        return self._iterate(lambda c: self.markets(limit=limit, cursor=c))

    async def market(self, symbol: str) -> Market:
        return Market.from_wire(await self._call("markets_get", {"symbol": symbol}))

    async def book(self, symbol: str, depth: int | None = None) -> Book:
        return Book.from_wire(await self._call("markets_book", {"symbol": symbol}, {"depth": depth}))

    async def ticker(self, symbol: str) -> Ticker:
        return Ticker.from_wire(await self._call("markets_ticker", {"symbol": symbol}))

    async def trades(self, symbol: str, *, limit: int | None = None, cursor: str | None = None) -> Page[Trade]:
        return self._page(Trade, await self._call("markets_trades", {"symbol": symbol},
                                                  {"limit": limit, "cursor": cursor}))

    def iter_trades(self, symbol: str, *, limit: int | None = None) -> AsyncIterator[Trade]:
        return self._iterate(lambda c: self.trades(symbol, limit=limit, cursor=c))

    async def account(self) -> Account:
        return Account.from_wire(await self._call("account_get"))

    async def balances(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Balance]:
        return self._page(Balance, await self._call("balances_list", query={"limit": limit, "cursor": cursor}))

    def iter_balances(self, *, limit: int | None = None) -> AsyncIterator[Balance]:
        return self._iterate(lambda c: self.balances(limit=limit, cursor=c))

    async def positions(self) -> list[Position]:
        return [Position.from_wire(row) for row in (await self._call("positions_list"))["results"]]

    async def fills(self, *, market: str | None = None, order_id: str | None = None, limit: int | None = None,
                    cursor: str | None = None) -> Page[Fill]:
        return self._page(Fill, await self._call("fills_list", query={"market": market, "order_id": order_id,
                                                                      "limit": limit, "cursor": cursor}))

    def iter_fills(self, *, market: str | None = None, order_id: str | None = None,
                   limit: int | None = None) -> AsyncIterator[Fill]:
        return self._iterate(lambda c: self.fills(market=market, order_id=order_id, limit=limit, cursor=c))

    async def ledger(self, *, asset: str | None = None, limit: int | None = None,
                     cursor: str | None = None) -> Page[LedgerEntry]:
        return self._page(LedgerEntry, await self._call("ledger_list", query={"asset": asset, "limit": limit,
                                                                              "cursor": cursor}))

    def iter_ledger(self, *, asset: str | None = None, limit: int | None = None) -> AsyncIterator[LedgerEntry]:
        return self._iterate(lambda c: self.ledger(asset=asset, limit=limit, cursor=c))

    async def place_order(self, market: str, side: Side, type: OrderType, *, quantity: str | None = None,
                          price: str | None = None, quote_quantity: str | None = None,
                          time_in_force: TimeInForce | None = None, post_only: bool | None = None,
                          client_order_id: str | None = None, stp: Stp | None = None,
                          stop_price: str | None = None, expire_time: str | None = None) -> Order:
        body = _order_body(market, side, type, quantity, price, quote_quantity, time_in_force, post_only,
                           client_order_id, stp, stop_price, expire_time)
        return Order.from_wire(await self._call("orders_submit", body=body))

    async def orders(self, *, market: str | None = None, status: str | None = None, limit: int | None = None,
                     cursor: str | None = None) -> Page[Order]:
        return self._page(Order, await self._call("orders_list", query={"market": market, "status": status,
                                                                        "limit": limit, "cursor": cursor}))

    def iter_orders(self, *, market: str | None = None, status: str | None = None,
                    limit: int | None = None) -> AsyncIterator[Order]:
        return self._iterate(lambda c: self.orders(market=market, status=status, limit=limit, cursor=c))

    async def order(self, order_id: str) -> Order:
        return Order.from_wire(await self._call("orders_get", {"order_id": order_id}))

    async def order_by_client_id(self, client_order_id: str) -> Order:
        return Order.from_wire(await self._call("orders_get_by_client_id", {"client_order_id": client_order_id}))

    async def cancel_order(self, order_id: str) -> Order:
        return Order.from_wire(await self._call("orders_cancel", {"order_id": order_id}))

    async def amend_order(self, order_id: str, *, price: str | None = None, quantity: str | None = None,
                          client_order_id: str | None = None) -> Order:
        return Order.from_wire(await self._call("orders_amend", {"order_id": order_id},
                                                body=_amend_body(price, quantity, client_order_id)))

    async def cancel_order_by_client_id(self, client_order_id: str) -> Order:
        return Order.from_wire(await self._call("orders_cancel_by_client_id", {"client_order_id": client_order_id}))

    async def cancel_all_orders(self, market: str | None = None) -> CancelAll:
        return CancelAll.from_wire(await self._call("orders_cancel_all", query={"market": market}))
