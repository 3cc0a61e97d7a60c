"""The per-process cache of markets an order is validated against.

Reading the market with its assets through the ORM was the largest single cost of an order's
validation (Django compiling the query, more than the round trip). Markets change rarely
and by an operator, so each process keeps them for ``BOURSE_MARKET_CACHE_S`` (1 s by
default) — but an order is never accepted against a stale copy: the order's write checks,
in the same statement and under the market row's shared lock, that the market is open and
every column validation used (``PINNED``) still holds the cached value
(``unchanged_sql``). When it does not, the write changes nothing, the entry is dropped and
the order is validated again against the market as it now is (``orders.order_submit``).
The services that change a market drop its entry in their own process at once.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db.models import Q

from ..models import Market

# Every column of the market that an order's validation or hold depends on.
PINNED = ("base_id", "quote_id", "tick_size", "lot_size", "min_quantity", "min_notional", "maker_fee_rate",
          "taker_fee_rate", "max_price", "max_quantity", "max_notional")

ASSET_PINS = PINNED[:2]
NUMBER_PINS = PINNED[2:]

_entries: dict[str, tuple[Market, float]] = {}
_lock = threading.Lock()


class MarketChanged(Exception):
    """The market an order was validated against was halted or edited before its write."""


_reading: set[str] = set()  # symbols whose expired entry one thread is reading again


def market_get(symbol: str) -> Market | None:
    """The market ``symbol`` with its assets, from the cache when read within its lifetime.

    When an entry has expired, ONE thread of the process reads the market again while the
    others go on with the entry they have — safe for the reason the cache is (the order's write
    checks the copy it was validated against). Every request thread reading it at once was
    ~3 % of a REST process's CPU under order load (py-spy): each expiry, all 16 threads that
    reached validation before the first read returned ran the same ORM query."""
    ttl = float(getattr(settings, "BOURSE_MARKET_CACHE_S", 1.0))
    entry = _entries.get(symbol)
    if entry is None:
        return _read(symbol, ttl)
    if time.monotonic() - entry[1] < ttl:
        return entry[0]
    with _lock:
        if symbol in _reading:
            return entry[0]
        _reading.add(symbol)
    try:
        return _read(symbol, ttl)
    finally:
        with _lock:
            _reading.discard(symbol)


def _read(symbol: str, ttl: float) -> Market | None:
    market = Market.objects.select_related("base", "quote").filter(symbol=symbol).first()
    if market is not None and ttl > 0:
        with _lock:
            _entries[symbol] = (market, time.monotonic())
    return market


def forget(symbol: str | None = None) -> None:
    """Drop ``symbol``'s entry (every entry with None)."""
    with _lock:
        if symbol is None:
            _entries.clear()
        else:
            _entries.pop(symbol, None)


def array_literal(values: Iterable[Any]) -> str:
    """PostgreSQL's text form of an array of ``values`` (``None`` is NULL; every other element
    quoted, so a text or a number in any notation reads back as itself)."""
    return "{" + ",".join(
        "NULL" if value is None else '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
        for value in values
    ) + "}"


_literals: dict[tuple[Any, ...], tuple[str, str]] = {}


def unchanged_condition() -> str:
    """``unchanged``'s condition: the status, then the two arrays of pinned values."""
    return _CONDITION


_CONDITION = (f"status = %s AND ARRAY[{', '.join(ASSET_PINS)}]::text[] = %s::text[] "
              f"AND ARRAY[{', '.join(NUMBER_PINS)}]::numeric[] = %s::numeric[]")


def unchanged(market: Market) -> tuple[str, list[Any]]:
    """``(condition, params)`` over the markets table's columns, for PostgreSQL: the market row
    is open and every pinned column still holds ``market``'s value (three parameters: arrays
    compare element by element, NULLs equal). The arrays go as their text form, made once per
    set of values: psycopg adapting two Python lists element by element on every order was
    ~4 % of a REST process's CPU under order load."""
    condition = unchanged_condition()
    values = tuple(getattr(market, column) for column in PINNED)
    literals = _literals.get(values)
    if literals is None:
        literals = (array_literal(values[:len(ASSET_PINS)]), array_literal(values[len(ASSET_PINS):]))
        if len(_literals) > 1000:  # markets are few; edits make new sets of values
            _literals.clear()
        _literals[values] = literals
    return condition, [Market.Status.OPEN, *literals]


def unchanged_q(market: Market) -> Q:
    """The same condition as a query filter (any database)."""
    return Q(pk=market.pk, status=Market.Status.OPEN) & Q(
        *[Q(**{f"{column}__isnull": True}) if getattr(market, column) is None else Q(**{column: getattr(market, column)})
          for column in PINNED]
    )
