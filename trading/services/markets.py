"""Market services: create markets (and their assets), change their filters, halt and resume
them. The console and the ``create_market`` command both come through here, so an edit runs
the same checks as a creation and is audited."""
from __future__ import annotations

import re
from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction

from accounts import ledger
from accounts.models import Asset
from audit.services import audit_record
from exchange import errors

from ..models import Market, Order
from . import marketcache

ASSET_CODE = re.compile(r"[A-Z][A-Z0-9]{1,15}")


def _decimal(value: object, field: str) -> Decimal:
    return ledger.to_amount(value, field)


def market_create(
    *,
    symbol: str,
    tick_size: object,
    lot_size: object,
    min_quantity: object = "0",
    min_notional: object = "0",
    maker_fee_rate: object = "0",
    taker_fee_rate: object = "0",
    base_scale: int | None = None,
    quote_scale: int | None = None,
    max_price: object = None,
    max_quantity: object = None,
    max_notional: object = None,
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
    parts = symbol.split("-")
    if len(parts) != 2 or not all(ASSET_CODE.fullmatch(part) for part in parts):
        raise errors.ValidationError.field("symbol", "invalid", "symbol must look like BASE-QUOTE (e.g. BTC-USD).")
    base_code, quote_code = parts
    values = _checked_filters(
        tick_size=tick_size, lot_size=lot_size, min_quantity=min_quantity, min_notional=min_notional,
        maker_fee_rate=maker_fee_rate, taker_fee_rate=taker_fee_rate,
    )
    bounds = {}
    for field, raw in (("max_price", max_price), ("max_quantity", max_quantity), ("max_notional", max_notional)):
        if raw is not None:
            bounds[field] = _decimal(raw, field)
            if bounds[field] <= 0:
                raise errors.ValidationError.field(field, "invalid", f"{field} must be positive")
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
        _full_clean(market)
        market.save()
        audit_record("market.created", target=market, after={"symbol": symbol, **values, **bounds})
        return market, True


def market_check_bounds(market: Market) -> None:
    """Refuse configured bounds the money columns could not honour (``Market.bound_problems``)."""
    problems = market.bound_problems()
    if problems:
        raise errors.ValidationError("; ".join(p["message"] for p in problems), errors=problems)


FILTER_FIELDS = ("tick_size", "lot_size", "min_quantity", "min_notional", "maker_fee_rate", "taker_fee_rate")
UNIT_FIELDS = ("tick_size", "lot_size")  # what the engine's integer prices and sizes are counted in


def _checked_filters(**raw: object) -> dict[str, Decimal]:
    """Parse and check a market's filter values (the rules of creation and of every edit)."""
    values = {field: _decimal(value, field) for field, value in raw.items()}
    problems = []
    for field in ("tick_size", "lot_size"):
        if field in values and values[field] <= 0:
            problems.append({"field": field, "code": "invalid", "message": f"{field} must be positive"})
    for field in ("min_quantity", "min_notional"):
        if field in values and values[field] < 0:
            problems.append({"field": field, "code": "invalid", "message": f"{field} must not be negative"})
    for field in ("maker_fee_rate", "taker_fee_rate"):
        if field in values and not 0 <= values[field] < 1:
            problems.append({"field": field, "code": "invalid", "message": f"{field} must be in [0, 1)"})
    if problems:
        raise errors.ValidationError("; ".join(p["message"] for p in problems), errors=problems)
    return values


def market_create_check(*, symbol: str, **filters: object) -> None:
    """Every check ``market_create`` makes before writing (symbol shape, filter rules, the
    decimals of existing assets); the console's add form runs it to show errors on the page."""
    parts = (symbol or "").strip().upper().split("-")
    if len(parts) != 2 or not all(ASSET_CODE.fullmatch(part) for part in parts):
        raise errors.ValidationError.field("symbol", "invalid", "symbol must look like BASE-QUOTE (e.g. BTC-USD).")
    values = _checked_filters(**filters)
    for code, field, places in (
        (parts[0], "lot_size", _places(values["lot_size"])),
        (parts[1], "tick_size", _places(values["tick_size"] * values["lot_size"])),
    ):
        asset = Asset.objects.filter(pk=code).first()
        if asset is not None:
            _check_scale(asset, places, field)


def market_changes_check(market: Market, **changes: object) -> dict[str, Decimal]:
    """The filters of ``market`` that ``changes`` would change, after every check
    ``market_update`` makes (it runs this under the market's lock; the console's form runs it
    first to show errors on the page). Writes nothing."""
    unknown = sorted(set(changes) - set(FILTER_FIELDS))
    if unknown:
        raise errors.ValidationError.field(unknown[0], "not_allowed", f"{unknown[0]} cannot be changed.")
    values = _checked_filters(**changes)
    changed = {field: value for field, value in values.items() if getattr(market, field) != value}
    units = [field for field in UNIT_FIELDS if field in changed]
    if units:
        live = Order.objects.filter(market=market, status__in=Order.LIVE_STATUSES).count()
        if live:
            raise errors.ValidationError.field(
                units[0],
                "live_orders",
                f"{' and '.join(units)} cannot change while {market.symbol} has {live} live order(s): "
                "halt the market, cancel its orders, change it, resume.",
            )
        tick = changed.get("tick_size", market.tick_size)
        lot = changed.get("lot_size", market.lot_size)
        _check_scale(market.base, _places(lot), "lot_size")
        _check_scale(market.quote, _places(tick * lot), "tick_size")
    return changed


def market_update(*, symbol: str, actor: object = None, reason: str = "", **changes: object) -> Market:
    """Change a market's filters (any of ``FILTER_FIELDS``) with the checks of
    ``market_create``: positive tick and lot sizes, non-negative minimums, fee rates in [0, 1),
    and assets that carry the decimals the new tick × lot needs.

    Tick and lot size are the units the engine counts resting orders in, so they cannot change
    while the market has a live (pending, open or partially filled) order: halt the market,
    cancel its orders, change them, resume. The market row is locked for the check, and an
    order submission holds it shared until it commits, so no order can slip in between.
    Audited as ``market.updated`` with the values before and after; a change to nothing
    records nothing.
    """
    with transaction.atomic(durable=True):
        market = Market.objects.select_for_update().select_related("base", "quote").filter(symbol=symbol).first()
        if market is None:
            raise errors.MarketNotFound(f"Market {symbol!r} does not exist.")
        changed = market_changes_check(market, **changes)
        if not changed:
            return market
        before = {field: getattr(market, field) for field in changed}
        for field, value in changed.items():
            setattr(market, field, value)
        _full_clean(market)
        market.save(update_fields=list(changed))
        transaction.on_commit(lambda: marketcache.forget(symbol))  # other processes: the order write's check
        audit_record("market.updated", target=market, actor=actor, before=before, after=changed, reason=reason)
        return market


def _full_clean(market: Market) -> None:
    """The model's own checks (digits, decimal places), reported as a ``validation_error``."""
    try:
        market.full_clean()
    except DjangoValidationError as exc:
        problems = [
            {"field": field, "code": "invalid", "message": f"{field}: {message}"}
            for field, messages in exc.message_dict.items() for message in messages
        ]
        raise errors.ValidationError("; ".join(p["message"] for p in problems), errors=problems) from None


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # a finite decimal (ledger.to_amount refuses the others)
    return max(0, -exponent)


def _asset_for(code: str, scale: int | None, places_needed: int, field: str) -> Asset:
    """The asset ``code``, created when missing; it must carry ``places_needed`` decimals."""
    asset = Asset.objects.filter(pk=code).first()
    if asset is None:
        asset = Asset(code=code, scale=scale if scale is not None else max(places_needed, 2))
        asset.full_clean()
        asset.save()
    _check_scale(asset, places_needed, field)
    return asset


def _check_scale(asset: Asset, places_needed: int, field: str) -> None:
    code = asset.code
    if places_needed > asset.scale:
        raise errors.ValidationError.field(
            field,
            "precision",
            f"{code} has {asset.scale} decimal places; this {field} needs {places_needed}"
            + (" (price × quantity must be exact in the quote asset)." if field == "tick_size" else "."),
        )


def market_set_status(*, symbol: str, status: str, actor: object = None, reason: str = "") -> Market:
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
            transaction.on_commit(lambda: marketcache.forget(symbol))
            audit_record(
                "market.halted" if status == Market.Status.HALTED else "market.resumed",
                target=market, actor=actor, before={"status": before}, after={"status": status}, reason=reason,
            )
        return market
