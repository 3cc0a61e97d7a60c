"""Market services: create markets (and their assets), halt and resume them."""
from __future__ import annotations

import re
from decimal import Decimal

from django.db import transaction

from accounts import ledger
from accounts.models import Asset
from audit.services import audit_record
from exchange import errors

from ..models import Market

ASSET_CODE = re.compile(r"[A-Z][A-Z0-9]{1,15}")


def _decimal(value, field: str) -> Decimal:
    return ledger.to_amount(value, field)


def market_create(
    *,
    symbol: str,
    tick_size,
    lot_size,
    min_quantity="0",
    min_notional="0",
    maker_fee_rate="0",
    taker_fee_rate="0",
    base_scale: int | None = None,
    quote_scale: int | None = None,
    max_price=None,
    max_quantity=None,
    max_notional=None,
) -> tuple[Market, bool]:
    """Create a market (and its base/quote assets when missing); ``created`` is False when the
    symbol exists, in which case nothing is changed.

    A new base asset gets the decimals of the lot size; a new quote asset the decimals of
    tick size × lot size, so every quantity, price and trade notional is exact. Existing
    assets must already carry that many decimals. ``max_price``/``max_quantity``/``max_notional``
    bound one order (``None``: the safe default, see ``Market.price_limit``); each must be
    positive and at most that default's storable ceiling.
    """
    symbol = (symbol or "").strip().upper()
    problems = []
    parts = symbol.split("-")
    if len(parts) != 2 or not all(ASSET_CODE.fullmatch(part) for part in parts):
        raise errors.ValidationError.field("symbol", "invalid", "symbol must look like BASE-QUOTE (e.g. BTC-USD).")
    base_code, quote_code = parts
    values = {}
    for field, raw in (
        ("tick_size", tick_size),
        ("lot_size", lot_size),
        ("min_quantity", min_quantity),
        ("min_notional", min_notional),
        ("maker_fee_rate", maker_fee_rate),
        ("taker_fee_rate", taker_fee_rate),
    ):
        values[field] = _decimal(raw, field)
    for field in ("tick_size", "lot_size"):
        if values[field] <= 0:
            problems.append({"field": field, "code": "invalid", "message": f"{field} must be positive"})
    for field in ("min_quantity", "min_notional"):
        if values[field] < 0:
            problems.append({"field": field, "code": "invalid", "message": f"{field} must not be negative"})
    for field in ("maker_fee_rate", "taker_fee_rate"):
        if not 0 <= values[field] < 1:
            problems.append({"field": field, "code": "invalid", "message": f"{field} must be in [0, 1)"})
    bounds = {}
    for field, raw in (("max_price", max_price), ("max_quantity", max_quantity), ("max_notional", max_notional)):
        if raw is not None:
            bounds[field] = _decimal(raw, field)
            if bounds[field] <= 0:
                problems.append({"field": field, "code": "invalid", "message": f"{field} must be positive"})
    if problems:
        raise errors.ValidationError("; ".join(p["message"] for p in problems), errors=problems)

    with transaction.atomic(durable=True):
        existing = Market.objects.filter(symbol=symbol).first()
        if existing is not None:
            return existing, False
        base = _asset_for(base_code, base_scale, _places(values["lot_size"]), "lot_size")
        # The quote asset must represent price × quantity exactly (see trading/pricing.py).
        quote = _asset_for(
            quote_code, quote_scale, _places(values["tick_size"] * values["lot_size"]), "tick_size"
        )
        if base.code == quote.code:
            raise errors.ValidationError.field("symbol", "invalid", "base and quote must differ.")
        market = Market(symbol=symbol, base=base, quote=quote, **values, **bounds)
        market_check_bounds(market)
        market.full_clean()
        market.save()
        audit_record("market.created", target=market, after={"symbol": symbol, **values, **bounds})
        return market, True


def market_check_bounds(market: Market) -> None:
    """Refuse configured bounds the money columns could not honour (``Market.bound_problems``)."""
    problems = market.bound_problems()
    if problems:
        raise errors.ValidationError("; ".join(p["message"] for p in problems), errors=problems)


def _places(value: Decimal) -> int:
    return max(0, -value.normalize().as_tuple().exponent)


def _asset_for(code: str, scale: int | None, places_needed: int, field: str) -> Asset:
    """The asset ``code``, created when missing; it must carry ``places_needed`` decimals."""
    asset = Asset.objects.filter(pk=code).first()
    if asset is None:
        asset = Asset(code=code, scale=scale if scale is not None else max(places_needed, 2))
        asset.full_clean()
        asset.save()
    if places_needed > asset.scale:
        raise errors.ValidationError.field(
            field,
            "precision",
            f"{code} has {asset.scale} decimal places; this {field} needs {places_needed}"
            + (" (price × quantity must be exact in the quote asset)." if field == "tick_size" else "."),
        )
    return asset


def market_set_status(*, symbol: str, status: str, actor=None, reason: str = "") -> Market:
    """Halt or resume a market. Halting refuses new orders; resting orders stay. A change is
    audited (``market.halted``/``market.resumed``, by ``actor`` or the current request's);
    setting the status a market already has changes nothing and records nothing."""
    if status not in Market.Status.values:
        raise errors.ValidationError.field("status", "invalid", "status is open or halted.")
    with transaction.atomic(durable=True):
        market = Market.objects.select_for_update().filter(symbol=symbol).first()
        if market is None:
            raise errors.MarketNotFound(f"Market {symbol!r} does not exist.")
        if market.status != status:
            before = market.status
            market.status = status
            market.save(update_fields=["status"])
            audit_record(
                "market.halted" if status == Market.Status.HALTED else "market.resumed",
                target=market, actor=actor, before={"status": before}, after={"status": status}, reason=reason,
            )
        return market
