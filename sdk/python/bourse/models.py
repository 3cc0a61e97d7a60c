"""Typed models of the REST objects. Field names, nullability and enum values follow
docs/openapi.yaml; tests/sdk_python/test_models_spec.py fails when they drift from it.

Money (prices, quantities, amounts, fees) stays a decimal string, exactly as on the wire:
convert with ``decimal.Decimal(value)``, never ``float``."""
from __future__ import annotations

import dataclasses
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeVar, get_args, get_origin

__all__ = [
    "Side", "OrderType", "TimeInForce", "Stp", "OrderStatus", "MarketStatus", "Liquidity", "Bucket", "LedgerKind",
    "Scheme", "Scope", "ServerTime", "Market", "Book", "Ticker", "Trade", "ApiKeyInfo", "Account", "Balance", "Fill",
    "LedgerEntry", "Order", "Position", "CancelAll", "Page", "MODELS",
]

Side = Literal["buy", "sell"]
OrderType = Literal["limit", "market", "stop_limit", "stop_market"]
TimeInForce = Literal["gtc", "ioc", "fok", "gtd"]
Stp = Literal["cancel_newest", "cancel_oldest", "cancel_both"]
OrderStatus = Literal["pending", "untriggered", "open", "partially_filled", "filled", "cancelled", "rejected"]
MarketStatus = Literal["open", "halted"]
Liquidity = Literal["maker", "taker"]
Bucket = Literal["available", "locked"]
LedgerKind = Literal["deposit", "withdrawal", "hold", "release", "trade", "fee", "adjustment"]
Scheme = Literal["hmac", "ed25519"]
Scope = Literal["read", "trade"]

M = TypeVar("M", bound="Model")
T = TypeVar("T")


class Model:
    """Base of the models: ``from_wire`` builds one from a JSON object (unknown members, which a
    newer server may add, are kept in ``extra``; nested models are built too)."""

    __wire_types__: ClassVar[dict[str, Any]]

    @classmethod
    def from_wire(cls: type[M], data: Mapping[str, Any]) -> M:
        hints = _hints(cls)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name == "extra":
                continue
            if f.name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise ValueError(f"{cls.__name__}: missing {f.name!r} in {dict(data)!r}")
                continue
            kwargs[f.name] = _convert(hints[f.name], data[f.name])
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        kwargs["extra"] = {k: v for k, v in data.items() if k not in known}
        return cls(**kwargs)

    def to_wire(self) -> dict[str, Any]:
        """The JSON object again (with any unknown members it came with)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name != "extra":
                out[f.name] = _unconvert(getattr(self, f.name))
        return {**out, **getattr(self, "extra", {})}


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls, vars(sys.modules[__name__]))
    return _HINTS[cls]


def _unconvert(value: Any) -> Any:
    if isinstance(value, Model):
        return value.to_wire()
    if isinstance(value, list):
        return [_unconvert(v) for v in value]
    return value


def _convert(hint: Any, value: Any) -> Any:
    origin = get_origin(hint)
    if value is None:
        return None
    if isinstance(hint, type) and issubclass(hint, Model) and isinstance(value, Mapping):
        return hint.from_wire(value)
    if origin is list:
        (item,) = get_args(hint)
        return [_convert(item, v) for v in value]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        for arg in get_args(hint):
            if arg is not type(None):
                return _convert(arg, value)
    return value


@dataclass(frozen=True, kw_only=True)
class ServerTime(Model):
    server_time: str
    epoch_ms: int
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class Market(Model):
    symbol: str
    base: str
    quote: str
    status: MarketStatus
    tick_size: str
    lot_size: str
    min_quantity: str
    min_notional: str
    maker_fee_rate: str
    taker_fee_rate: str
    max_price: str  # the largest price, quantity and notional one order may have
    max_quantity: str
    max_notional: str
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class Book(Model):
    market: str
    sequence: int
    bids: list[list[str]]
    asks: list[list[str]]
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class Ticker(Model):
    market: str
    last_price: str | None
    last_trade_at: str | None
    best_bid: str | None
    best_ask: str | None
    open_24h: str | None
    high_24h: str | None
    low_24h: str | None
    volume_24h: str
    quote_volume_24h: str
    sequence: int
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class Trade(Model):
    trade_id: str
    market: str
    price: str
    quantity: str
    taker_side: Side
    created_at: str
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class ApiKeyInfo(Model):
    key_id: str
    label: str
    scheme: Scheme
    scopes: list[Scope]
    ip_allowlist: list[str]
    expires_at: str | None
    created_at: str
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class Account(Model):
    account_id: str
    name: str
    created_at: str
    api_key: ApiKeyInfo
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class Balance(Model):
    asset: str
    total: str
    available: str
    locked: str
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class Fill(Model):
    fill_id: str
    trade_id: str
    order_id: str
    client_order_id: str | None
    market: str
    side: Side
    price: str
    quantity: str
    fee: str
    fee_asset: str
    liquidity: Liquidity
    created_at: str
    settled: bool
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class LedgerEntry(Model):
    entry_id: str
    journal_id: str
    asset: str
    bucket: Bucket
    kind: LedgerKind
    amount: str
    reference: str
    created_at: str
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class Order(Model):
    order_id: str
    client_order_id: str | None
    market: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    post_only: bool
    stp: Stp
    price: str | None
    quantity: str | None
    quote_quantity: str | None
    stop_price: str | None
    expire_time: str | None
    filled_quantity: str
    remaining_quantity: str | None
    average_price: str | None
    status: OrderStatus
    reject_reason: str | None
    cancel_reason: str | None
    created_at: str
    updated_at: str
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class Position(Model):
    market: str
    base: str
    quote: str
    net_quantity: str
    average_entry_price: str | None
    mark_price: str | None
    realized_pnl: str
    unrealized_pnl: str
    fees_paid: str
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class CancelAll(Model):
    cancelled: list[str]
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a cursor-paginated list: ``next_cursor`` is None on the last page."""

    results: list[T]
    next_cursor: str | None


# The OpenAPI component each model stands for (the drift test walks this table).
MODELS: dict[str, type[Model]] = {
    "ServerTime": ServerTime, "Market": Market, "Book": Book, "Ticker": Ticker, "Trade": Trade,
    "ApiKeyInfo": ApiKeyInfo, "Account": Account, "Balance": Balance, "Fill": Fill, "LedgerEntry": LedgerEntry,
    "Order": Order, "Position": Position, "CancelAll": CancelAll,
}
