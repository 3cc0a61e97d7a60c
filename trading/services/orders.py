"""Order services: the only way any transport (REST, WebSocket, FIX) changes an order.

``order_submit`` validates, enforces ``client_order_id`` idempotency, and in ONE transaction
locks the order's maximum cost and inserts the order as ``pending`` with its engine
command; the engine process owning the market is woken when it commits. ``order_cancel``,
``order_cancel_by_client_id`` and ``order_cancel_all`` queue cancel commands in the same
sequence; ``order_amend`` takes any extra hold and queues an amend command. Each can then wait for the
engine's verdict (``wait`` seconds, 2 s by default at the transports), answering with the
order as the engine left it, or still ``pending`` when the engine did not answer in time.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts import ledger
from accounts.models import Account, EntryKind
from audit.services import audit_record, audit_record_many, audit_refusals
from exchange import errors, metrics
from exchange.errors import DuplicateClientOrderId, OrderClosed
from exchange.syntax import parse_id

from .. import filters, notify, pricing
from ..models import Command, Market, Order
from ..outbox.services import balances_publish
from . import marketcache, order_write

log = logging.getLogger("bourse.orders")

CLIENT_ORDER_ID = re.compile(r"\A[A-Za-z0-9_-]{1,36}\Z")
# Waiters sleep on the verdict signal and read the database when it comes. Signals are hints
# (a lost one must not strand a caller), so a waiter also re-reads this often without one:
# a safety net, not the hot path, which never polls.
VERDICT_RECHECK_S = 1.0
# Validations against a market that keeps changing under the order before it is refused as busy.
MARKET_CHANGED_ATTEMPTS = 3


@dataclass(frozen=True)
class OrderRequest:
    """A validated order, as the engine will see it (decimals already checked)."""

    market: Market
    side: str
    type: str
    time_in_force: str
    post_only: bool
    stp: str
    price: Decimal | None
    quantity: Decimal | None
    quote_quantity: Decimal | None
    client_order_id: str | None
    stop_price: Decimal | None = None
    expire_time: datetime | None = None

    def same_as(self, order: Order) -> bool:
        """Whether an existing order was submitted with exactly these parameters."""
        return (
            order.market_id == self.market.pk
            and order.side == self.side
            and order.type == self.type
            and order.time_in_force == self.time_in_force
            and order.post_only == self.post_only
            and order.stp == self.stp
            and order.price == self.price
            and order.quantity == self.quantity
            and order.quote_quantity == self.quote_quantity
            and order.stop_price == self.stop_price
            and order.expire_time == self.expire_time
        )


@dataclass(frozen=True)
class SubmitResult:
    order: Order
    created: bool  # False: an identical earlier submission with this client_order_id


# Each choice's values, listed once: ``Choices.values`` builds its list anew on every access
# (labels and all), several times per order.
_SIDES, _TYPES = tuple(Order.Side.values), tuple(Order.Type.values)
_TIMES_IN_FORCE, _STPS = tuple(Order.TimeInForce.values), tuple(Order.Stp.values)


def _choice(value: object, field: str, allowed: Collection[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise errors.ValidationError.field(field, "invalid_choice", f"{field} must be one of: {', '.join(allowed)}")
    return value


def _money(value: object, field: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str):
        raise errors.ValidationError.field(field, "invalid_type", f"{field} must be a decimal string, e.g. \"0.0100\"")
    return ledger.to_amount(value, field)


RFC3339 = re.compile(
    r"\A(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})\Z"
)


def _expire_time(value: object) -> datetime | None:
    """An RFC 3339 time (``2026-12-06T18:00:00.123456Z``; offsets allowed, digits past
    microseconds dropped), or None."""
    if value is None or isinstance(value, datetime):
        return value
    message = "expire_time must be an RFC 3339 time with a UTC offset, e.g. \"2026-12-06T18:00:00Z\""
    match = RFC3339.match(value) if isinstance(value, str) else None
    if match is None:
        raise errors.ValidationError.field("expire_time", "invalid", message)
    day, clock, fraction, offset = match.groups()
    text = f"{day}T{clock}{(fraction or '')[:7]}{'+00:00' if offset in ('Z', 'z') else offset}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise errors.ValidationError.field("expire_time", "invalid", message) from None


def _check_expire_time(expire_time: datetime) -> list[dict[str, str]]:
    now = timezone.now()
    if expire_time <= now:
        return [{"field": "expire_time", "code": "in_past", "message": "expire_time must be in the future"}]
    latest = now + timedelta(days=settings.BOURSE_GTD_MAX_DAYS)
    if expire_time > latest:
        return [{"field": "expire_time", "code": "too_far",
                 "message": f"expire_time must be at most {settings.BOURSE_GTD_MAX_DAYS} days ahead"}]
    return []


def order_validate(
    *,
    market: str,
    side: object,
    type: object,
    quantity: object = None,
    price: object = None,
    quote_quantity: object = None,
    time_in_force: object = "gtc",
    post_only: object = False,
    client_order_id: object = None,
    stp: object = "cancel_newest",
    stop_price: object = None,
    expire_time: object = None,
) -> OrderRequest:
    """Check an order against the API's rules and the market's filters (no writes).

    ``type`` ``stop_limit``/``stop_market`` need ``stop_price`` (a valid price of the market);
    ``time_in_force`` ``gtd`` needs ``expire_time`` (RFC 3339, in the future, at most
    ``BOURSE_GTD_MAX_DAYS`` ahead). Every failure names its field."""
    side = _choice(side, "side", _SIDES)
    type = _choice(type, "type", _TYPES)
    time_in_force = _choice(time_in_force, "time_in_force", _TIMES_IN_FORCE)
    stp = _choice(stp, "stp", _STPS)
    if not isinstance(post_only, bool):
        raise errors.ValidationError.field("post_only", "invalid_type", "post_only must be true or false")
    if client_order_id is not None and (not isinstance(client_order_id, str) or not CLIENT_ORDER_ID.match(client_order_id)):
        raise errors.ValidationError.field(
            "client_order_id", "invalid", "client_order_id must be 1-36 characters of A-Za-z0-9_-"
        )
    price, quantity, quote_quantity, stop_price = (
        _money(price, "price"),
        _money(quantity, "quantity"),
        _money(quote_quantity, "quote_quantity"),
        _money(stop_price, "stop_price"),
    )
    expire_time = _expire_time(expire_time)
    market_obj = marketcache.market_get(market)
    if market_obj is None:
        raise errors.MarketNotFound(f"Market {market!r} does not exist.")

    problems: list[dict[str, str]] = []
    is_stop = type in Order.STOP_TYPES
    if is_stop and stop_price is None:
        problems.append({"field": "stop_price", "code": "required", "message": f"stop_price is required for {type} orders"})
    if not is_stop and stop_price is not None:
        problems.append({"field": "stop_price", "code": "not_allowed", "message": "stop_price is only for stop orders"})
    if is_stop and post_only:
        problems.append({"field": "post_only", "code": "not_allowed", "message": "stop orders cannot be post_only"})
    if time_in_force == Order.TimeInForce.GTD:
        if expire_time is None:
            problems.append({"field": "expire_time", "code": "required", "message": "expire_time is required for gtd orders"})
        else:
            problems += _check_expire_time(expire_time)
        if type == Order.Type.MARKET:
            problems.append({"field": "time_in_force", "code": "not_allowed", "message": "market orders never rest: no gtd"})
    elif expire_time is not None:
        problems.append({"field": "expire_time", "code": "not_allowed", "message": "expire_time is only for gtd orders"})
    if type in Order.LIMIT_TYPES:
        if price is None:
            problems.append({"field": "price", "code": "required", "message": "price is required for limit orders"})
        if quantity is None:
            problems.append({"field": "quantity", "code": "required", "message": "quantity is required for limit orders"})
        if quote_quantity is not None:
            problems.append({"field": "quote_quantity", "code": "not_allowed", "message": "quote_quantity is only for market buys"})
    else:
        if price is not None:
            problems.append({"field": "price", "code": "not_allowed", "message": "market orders take no price"})
        if post_only:
            problems.append({"field": "post_only", "code": "not_allowed", "message": "post_only applies to limit orders"})
        if side == Order.Side.SELL:
            if quantity is None:
                problems.append({"field": "quantity", "code": "required", "message": "quantity is required for market sells"})
            if quote_quantity is not None:
                problems.append({"field": "quote_quantity", "code": "not_allowed", "message": "quote_quantity is only for market buys"})
        elif quote_quantity is None:
            # Without a budget a market buy's cost has no bound, so nothing could be held for it.
            problems.append(
                {"field": "quote_quantity", "code": "required", "message": "a market buy needs quote_quantity (quantity may cap it too)"}
            )
        elif time_in_force == Order.TimeInForce.FOK and quantity is None:
            problems.append({"field": "quantity", "code": "required", "message": "a fill-or-kill market buy needs quantity"})
    if post_only and time_in_force not in (Order.TimeInForce.GTC, Order.TimeInForce.GTD):
        problems.append({"field": "post_only", "code": "not_allowed", "message": "post_only orders are gtc or gtd"})
    if stop_price is not None:
        problems += filters.price_errors(market_obj, stop_price, "stop_price")
    if problems:
        raise errors.ValidationError("; ".join(p["message"] for p in problems), errors=problems)

    if type in Order.LIMIT_TYPES:
        assert price is not None and quantity is not None  # refused above when missing
        filters.market_check_limit(market_obj, price=price, quantity=quantity)
    else:
        if quantity is not None:
            filters.market_check_quantity(market_obj, quantity=quantity)
        if quote_quantity is not None:
            _check_budget(market_obj, quote_quantity)
    return OrderRequest(
        market=market_obj,
        side=side,
        type=type,
        time_in_force=time_in_force,
        post_only=post_only,
        stp=stp,
        price=price,
        quantity=quantity,
        quote_quantity=quote_quantity,
        client_order_id=client_order_id,
        stop_price=stop_price,
        expire_time=expire_time,
    )


def _check_budget(market_obj: Market, quote_quantity: Decimal) -> None:
    filters.market_check_quote_quantity(market_obj, quote_quantity=quote_quantity)
    if pricing.market_buy_budget_units(market_obj, quote_quantity) <= 0:
        raise errors.ValidationError.field("quote_quantity", "min_notional", "quote_quantity cannot buy one lot after fees")


def order_submit(*, account: Account, wait: float = 0.0, **params: Any) -> SubmitResult:
    """Submit an order for ``account`` (parameters as ``order_validate``).

    Locks the order's maximum cost and inserts it ``pending`` in one transaction; waits up to
    ``wait`` seconds for the engine's verdict. Resubmitting a ``client_order_id`` with the same
    parameters returns the existing order (``created`` False); different parameters raise
    ``DuplicateClientOrderId``. Refusals write nothing.
    """
    # A refused submission (validation, balance, halted market, duplicate id) is audited
    # after its transaction rolled back.
    with audit_refusals("order.rejected", account=account, after=_audit_params(params)):
        return_now: SubmitResult | None = None
        for attempt in range(MARKET_CHANGED_ATTEMPTS):
            try:
                return_now, order, waiter, submitted = _submit_once(account, wait, params, fresh=attempt > 0)
                break
            except marketcache.MarketChanged:
                # Halted or edited since this process cached it: validate again against the
                # market as it is now (which refuses precisely if it is halted).
                marketcache.forget(str(params.get("market")))
                if attempt == MARKET_CHANGED_ATTEMPTS - 1:
                    raise errors.ServiceUnavailable(
                        f"Market {params.get('market')} is being changed; retry the order.") from None
        if return_now is not None:
            return return_now
    if waiter is not None:
        order = _after_commit(order_wait, order, wait, waiter, fresh=True, default=order)
        metrics.ORDER_VERDICT.labels("pending" if order.status == Order.Status.PENDING else "verdict").observe(
            time.perf_counter() - submitted)
    return SubmitResult(order, created=True)


def _submit_once(account: Account, wait: float, params: dict[str, Any], *, fresh: bool
                 ) -> tuple[SubmitResult | None, Order, notify.VerdictWaiter | None, float]:
    """Validate and write one submission: ``(earlier result, …)`` when its client_order_id
    names an identical earlier order, else ``(None, order, waiter, submitted at)``. Raises
    ``MarketChanged`` when the market changed under the cached copy validation used, and
    instead of refusing against a cached copy unless ``fresh`` (the market was just re-read):
    an order is only ever refused for the market as it is now (just resumed, say)."""
    try:
        request = order_validate(**params)
    except errors.ValidationError:
        if fresh:
            raise
        raise marketcache.MarketChanged() from None
    # A client_order_id is looked up only when the order could not be written: the unique
    # constraint refuses a second order with it (a look-up before every write was most of a
    # FIX order's cost, every NewOrderSingle carrying a ClOrdID), and a resubmission refused
    # for the market or the balance is still answered with the order it repeats.
    waiter = notify.VerdictWaiter.get() if wait > 0 else None
    submitted = time.perf_counter()
    try:
        if not request.market.is_open:
            if not fresh:
                raise marketcache.MarketChanged()
            raise errors.MarketHalted(f"Market {request.market.symbol} is halted.")
        order = _insert(account, request)
    except (IntegrityError, errors.MarketHalted, errors.InsufficientBalance):
        # The same client_order_id already used (or raced by a concurrent submission, which the
        # constraint let win), or a refusal that an earlier identical order answers instead.
        existing = None if request.client_order_id is None else \
            Order.objects.filter(account=account, client_order_id=request.client_order_id).first()
        if existing is None:
            raise
        return SubmitResult(_same_or_refuse(request, existing), created=False), existing, None, 0.0
    return None, order, waiter, submitted


_T = TypeVar("_T")


def _after_commit(wait_for: Callable[..., _T], *args: Any, default: _T, **kwargs: Any) -> _T:
    """Wait for the engine after a committed write. The write stands whatever happens now:
    if waiting fails (the database restarting while the caller waits, a broken connection),
    the caller gets ``default`` — what was committed, answered as "the engine has not
    answered yet" (REST 202) — never an error for a change that was made."""
    try:
        return wait_for(*args, **kwargs)
    except errors.BourseError:  # a verdict (the cancel found the order closed), not a failure
        raise
    except Exception:
        log.warning("waiting for the engine failed after commit; answering as not yet answered", exc_info=True)
        return default


def _audit_params(params: dict[str, object]) -> dict[str, object]:
    """The submitted parameters as the audit trail keeps them (JSON-safe, no secrets here)."""
    return {name: value if isinstance(value, (str, bool, type(None))) else str(value) for name, value in params.items()}


def _same_or_refuse(request: OrderRequest, existing: Order) -> Order:
    if not request.same_as(existing):
        raise DuplicateClientOrderId(
            f"client_order_id {request.client_order_id!r} was used for order {existing.pk} with other parameters."
        )
    return existing


def _insert(account: Account, request: OrderRequest) -> Order:
    market = request.market
    asset, amount = pricing.order_hold(
        market,
        side=request.side,
        type=request.type,
        price=request.price,
        quantity=request.quantity,
        quote_quantity=request.quote_quantity,
    )
    if order_write.available():
        # PostgreSQL: the same rows in one statement; anything it cannot decide alone (a halt,
        # a missing balance row, a short balance) falls through to the general path below,
        # which refuses precisely or creates the row.
        unsaved = Order(
            account=account, market=market, client_order_id=request.client_order_id, side=request.side,
            type=request.type, time_in_force=request.time_in_force, post_only=request.post_only, stp=request.stp,
            price=request.price, quantity=request.quantity, quote_quantity=request.quote_quantity,
            stop_price=request.stop_price, expire_time=request.expire_time,
            hold_asset_id=asset, hold_amount=amount, hold_remaining=amount,
        )
        written = order_write.order_insert_one_statement(account.pk, market, unsaved, _order_audit(unsaved))
        if written is not None:
            return written
    with transaction.atomic(durable=True):
        # Re-read the market under a shared row lock: a halt (or a filter edit) takes the row
        # exclusively, so it either commits before this read (and the order is refused) or
        # waits until this order is committed — an order is never accepted after a halt.
        if not _market_unchanged_locked(market):
            raise marketcache.MarketChanged()
        order = Order.objects.create(
            account=account,
            market=market,
            client_order_id=request.client_order_id,
            side=request.side,
            type=request.type,
            time_in_force=request.time_in_force,
            post_only=request.post_only,
            stp=request.stp,
            price=request.price,
            quantity=request.quantity,
            quote_quantity=request.quote_quantity,
            stop_price=request.stop_price,
            expire_time=request.expire_time,
            hold_asset_id=asset,
            hold_amount=amount,
            hold_remaining=amount,
        )
        ledger.post(EntryKind.HOLD, ledger.hold_legs(account.pk, asset, amount), reference=f"order:{order.pk}")
        balances_publish([(account.pk, asset)], market.pk)  # the `balances` WebSocket event
        Command.objects.create(market=market, kind=Command.Kind.NEW, order=order)
        audit_record("order.submitted", target=order, after=_order_audit(order))
        notify.wake_engine(market.pk)
    return order


def _market_unchanged_locked(market: Market) -> bool:
    """Whether ``market`` is open and as validation saw it (``marketcache.PINNED``), read under
    a shared lock held to the end of the transaction (PostgreSQL ``FOR SHARE``: submissions do
    not wait for each other, only for a halt or an edit; SQLite's immediate transactions
    already hold the database's one write lock)."""
    if connection.vendor == "postgresql":
        condition, params = marketcache.unchanged(market)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM {Market._meta.db_table} WHERE id = %s AND {condition} FOR SHARE",
                           [market.pk, *params])
            return cursor.fetchone() is not None
    return Market.objects.filter(marketcache.unchanged_q(market)).exists()


def _order_audit(order: Order) -> dict[str, object]:
    return {
        "market": order.market.symbol, "side": order.side, "type": order.type, "price": order.price,
        "quantity": order.quantity, "quote_quantity": order.quote_quantity, "time_in_force": order.time_in_force,
        "post_only": order.post_only, "client_order_id": order.client_order_id, "hold": order.hold_amount,
    } | ({"stop_price": order.stop_price} if order.stop_price is not None else {}) | (
        {"expire_time": order.expire_time.isoformat()} if order.expire_time is not None else {}
    )


def order_wait(
    order: Order,
    timeout: float,
    waiter: notify.VerdictWaiter | None = None,
    *,
    until: Callable[[Order], bool] | None = None,
    fresh: bool = False,
) -> Order:
    """Wait up to ``timeout`` s until ``until(order)`` holds (default: no longer pending);
    return the order as last known.

    The engine's verdict message carries the order's new state, so the order is updated
    from it without reading the database. ``fresh``: ``order`` was written after ``waiter``
    started listening, so every later verdict reaches the waiter and no first read is
    needed (``order_submit``); otherwise the order is read once first. Without a message
    for ``VERDICT_RECHECK_S`` (a lost signal) it is re-read: the bounded safety net."""
    until = until or (lambda o: o.status != Order.Status.PENDING)
    waiter = waiter or notify.VerdictWaiter.get()
    event = waiter.register(order.pk)
    deadline = time.monotonic() + timeout
    read = not fresh
    try:
        while True:
            verdict = waiter.verdict(order.pk)
            if read:
                order.refresh_from_db()
            elif verdict is not None and (order.status == Order.Status.PENDING or verdict.updated_at >= order.updated_at):
                verdict.apply(order)  # a pending order's first verdict is always newer (clock skew aside)
            remaining = deadline - time.monotonic()
            if until(order) or remaining <= 0:
                return order
            # Sleep until the engine's verdict message for this order (cleared before the
            # next look, so one landing in between is seen by it).
            signalled = event.wait(min(remaining, VERDICT_RECHECK_S))
            event.clear()
            # A message with this order's verdict needs no read; a bare hint (or none within
            # the re-check interval: a lost signal) does.
            latest = waiter.verdict(order.pk)
            read = not signalled or latest is None
    finally:
        waiter.unregister(order.pk, event)


def _owned_order(account: Account, order_id: Any) -> Order:
    """``order_id`` as the client sent it: anything that is not an id (ASCII digits, in range) is not found."""
    order_pk = parse_id(order_id)
    if order_pk is None:
        raise errors.NotFound(f"Order {str(order_id)[:40]} not found.")
    order = Order.objects.select_related("market__base", "market__quote").filter(pk=order_pk, account=account).first()
    if order is None:  # another account's order is indistinguishable from a missing one
        raise errors.NotFound(f"Order {order_id} not found.")
    return order


# Who asked for a cancel; the order's cancel_reason. The engine adds its own: ioc, fok, stp,
# expired, market_no_liquidity, budget.
CANCEL_REASONS = ("user", "disconnect", "operator", "dead_man", "market_halted")


def _cancel_reason(reason: str) -> str:
    if reason not in CANCEL_REASONS:
        raise ValueError(f"cancel reason must be one of {CANCEL_REASONS}")
    return "" if reason == "user" else reason  # the engine's own reason for a cancel is "user"


def order_cancel(*, account: Account, order_id: Any, wait: float = 0.0, reason: str = "user") -> tuple[Order, bool]:
    """Queue a cancel for one of ``account``'s orders; wait up to ``wait`` s for the engine.
    ``reason`` becomes the order's ``cancel_reason``: ``user`` (the owner), ``operator``
    (the console), ``disconnect`` (cancel-on-disconnect).

    Returns ``(order, answered)``: ``answered`` is False when the engine did not confirm in
    time (the cancel stays queued). Raises ``OrderClosed`` if the order is already closed,
    or if it closed (filled) before the engine reached the cancel.
    """
    # Refusals are aggregated per account and code: a client cancelling a closed order in a
    # loop must not grow the audit trail without bound.
    with audit_refusals("order.cancelled", account=account, after={"order_id": str(order_id)}, aggregate="cancel"):
        order = _owned_order(account, order_id)
        if order.is_closed:
            raise OrderClosed(f"Order {order.pk} is already {order.status}.")
        with transaction.atomic(durable=True):
            command = Command.objects.create(market_id=order.market_id, kind=Command.Kind.CANCEL, order=order,
                                             reason=_cancel_reason(reason))
            audit_record("order.cancelled", target=order, after={"requested": True})
            notify.wake_engine(order.market_id)
    if wait <= 0:
        return order, False
    return _after_commit(_cancel_verdict, order, command, wait, default=(order, False))


def order_cancel_by_client_id(
    *, account: Account, client_order_id: Any, wait: float = 0.0, reason: str = "user"
) -> tuple[Order, bool]:
    """``order_cancel`` for the order ``account`` submitted with ``client_order_id`` (an id
    that names none of its orders, or is malformed, is ``NotFound``)."""
    order = None
    if isinstance(client_order_id, str) and CLIENT_ORDER_ID.match(client_order_id):
        order = Order.objects.filter(account=account, client_order_id=client_order_id).only("pk").first()
    if order is None:
        with audit_refusals("order.cancelled", account=account, after={"client_order_id": str(client_order_id)[:40]},
                            aggregate="cancel"):
            raise errors.NotFound(f"Order with client_order_id {str(client_order_id)[:40]!r} not found.")
    return order_cancel(account=account, order_id=order.pk, wait=wait, reason=reason)


def order_amend(
    account: Account,
    order_id: Any,
    *,
    price: object = None,
    quantity: object = None,
    client_order_id: object = None,
    wait: float = 0.0,
) -> tuple[Order, bool]:
    """Amend one of ``account``'s live orders in place (same ``order_id``): any of a new
    ``price``, a new total ``quantity`` (above what already filled), a new
    ``client_order_id``. The engine keeps the order's time priority for a quantity
    decrease at the same price; a price change or a quantity increase loses it (the order
    re-enters, and may trade at once).

    In one transaction, under the order's row lock: the extra hold the new price/quantity
    can need (``InsufficientBalance`` if not available; nothing written then), the new
    client order id, the amend command. What the order no longer needs is released by
    settlement once the engine applied the amend. Waits up to ``wait`` s for the engine.

    Returns ``(order, answered)`` (``answered`` False: the engine did not confirm in time,
    the amend stays queued). Raises ``OrderClosed`` if the order is (or closed before the
    engine reached the amend), ``ValidationError`` (field named) for a bad value or one the
    engine refused (``post_only_would_cross``, ``at_or_below_filled``),
    ``DuplicateClientOrderId`` if the new client id names another order, ``MarketHalted``.
    """
    with audit_refusals("order.amended", account=account, after=_audit_params(
            {"order_id": order_id, "price": price, "quantity": quantity, "client_order_id": client_order_id})):
        new_price, new_quantity = _money(price, "price"), _money(quantity, "quantity")
        if client_order_id is not None and (
            not isinstance(client_order_id, str) or not CLIENT_ORDER_ID.match(client_order_id)
        ):
            raise errors.ValidationError.field(
                "client_order_id", "invalid", "client_order_id must be 1-36 characters of A-Za-z0-9_-"
            )
        if new_price is None and new_quantity is None and client_order_id is None:
            raise errors.ValidationError.field(
                "price", "required", "an amend needs at least one of price, quantity, client_order_id"
            )
        order = _owned_order(account, order_id)
        market = Market.objects.select_related("base", "quote").get(pk=order.market_id)
        order.market = market
        if order.is_closed:
            raise OrderClosed(f"Order {order.pk} is already {order.status}.")
        _check_amend(order, market, new_price, new_quantity)
        if not market.is_open and (new_price is not None or new_quantity is not None):
            raise errors.MarketHalted(f"Market {market.symbol} is halted.")
        try:
            with transaction.atomic(durable=True):
                order, command = _amend_locked(account, order.pk, market, new_price, new_quantity, client_order_id)
        except IntegrityError:
            raise DuplicateClientOrderId(f"client_order_id {client_order_id!r} names another order.") from None
    if wait <= 0:
        return order, False
    return _after_commit(_amend_verdict, order, command, wait, default=(order, False))


def _check_amend(order: Order, market: Market, price: Decimal | None, quantity: Decimal | None) -> None:
    """The amend's values against the order and the market's filters (no writes)."""
    if price is None and quantity is None:
        return
    if not order.is_limit_form:
        field = "price" if price is not None else "quantity"
        raise errors.ValidationError.field(field, "not_allowed", f"{order.type} orders cannot change price or quantity")
    assert order.price is not None and order.quantity is not None  # limit forms always carry both
    new_price = order.price if price is None else price
    new_quantity = order.quantity if quantity is None else quantity
    filters.market_check_limit(market, price=new_price, quantity=new_quantity)
    if quantity is not None and quantity <= order.filled_quantity:
        raise errors.ValidationError.field(
            "quantity", "at_or_below_filled",
            f"quantity must exceed the filled quantity {filters._plain(order.filled_quantity)}",
        )


def _amend_locked(account: Account, order_pk: int, market: Market, price: Decimal | None,
                  quantity: Decimal | None, client_order_id: object) -> tuple[Order, Command]:
    """The amend's writes, in the caller's transaction, with the order row locked first (a
    closure and its settlement wait for it, so an extra hold can never outlive the order)."""
    order = Order.objects.select_for_update(of=("self",)).get(pk=order_pk)
    order.market = market
    if order.is_closed:
        raise OrderClosed(f"Order {order.pk} is already {order.status}.")
    if quantity is not None and quantity <= order.filled_quantity:
        raise errors.ValidationError.field(
            "quantity", "at_or_below_filled", f"quantity must exceed the filled quantity {order.filled_quantity}"
        )
    before = {"price": order.price, "quantity": order.quantity, "client_order_id": order.client_order_id}
    extra = _amend_extra_hold(order, price, quantity)
    if extra > 0:
        ledger.post(EntryKind.HOLD, ledger.hold_legs(account.pk, order.hold_asset_id, extra),
                    reference=f"amend:{order.pk}")
        balances_publish([(account.pk, order.hold_asset_id)], market.pk)
    changes: dict[str, Any] = {}
    if extra > 0:
        changes.update(hold_amount=F("hold_amount") + extra, hold_remaining=F("hold_remaining") + extra)
    if price is not None or quantity is not None:
        changes["hold_review"] = True  # fills meanwhile keep their hold: settlement reviews it after the amend
    if client_order_id is not None and client_order_id != order.client_order_id:
        changes["client_order_id"] = client_order_id
    if changes:
        Order.objects.filter(pk=order.pk).update(**changes)
    command = Command.objects.create(market=market, kind=Command.Kind.AMEND, order=order, price=price, quantity=quantity)
    audit_record("order.amended", target=order, before=before, after={
        "price": price, "quantity": quantity, "client_order_id": client_order_id, "extra_hold": extra, "requested": True,
    })
    notify.wake_engine(market.pk)
    order.refresh_from_db()
    return order, command


def _amend_extra_hold(order: Order, price: Decimal | None, quantity: Decimal | None) -> Decimal:
    """What the amend needs held beyond the order's current need: the need at the new price
    for the new remaining quantity, less the need at the current ones (never negative; a
    decrease is released by settlement once the engine applied it)."""
    if price is None and quantity is None:
        return Decimal(0)
    assert order.quantity is not None and order.price is not None  # limit forms (checked by _check_amend)
    remaining = order.quantity - order.filled_quantity
    now_needs = pricing.required_hold(order, remaining)
    new_order = Order(type=order.type, side=order.side, market=order.market,
                      price=order.price if price is None else price)
    new_remaining = (order.quantity if quantity is None else quantity) - order.filled_quantity
    return max(Decimal(0), pricing.required_hold(new_order, new_remaining) - now_needs)


def _amend_verdict(order: Order, command: Command, wait: float) -> tuple[Order, bool]:
    order = order_wait(order, wait, until=lambda o: Command.objects.filter(pk=command.pk, processed=True).exists())
    command.refresh_from_db()
    if not command.processed:
        return order, False
    if command.result == "amended":
        return order, True
    if command.result == "post_only_would_cross":
        raise errors.ValidationError.field("price", "post_only_would_cross",
                                           "the new price would take liquidity from a post_only order")
    if command.result == "invalid_quantity":
        raise errors.ValidationError.field("quantity", "at_or_below_filled",
                                           f"quantity must exceed the filled quantity {order.filled_quantity}")
    raise OrderClosed(f"Order {order.pk} closed ({order.status}) before the amend reached the engine.")


def _cancel_verdict(order: Order, command: Command, wait: float) -> tuple[Order, bool]:
    order = order_wait(order, wait, until=lambda o: o.is_closed)
    command.refresh_from_db()
    if command.processed:
        if command.result != "cancelled":  # the engine found the order closed already
            raise OrderClosed(f"Order {order.pk} closed ({order.status}) before the cancel reached the engine.")
        return order, True
    if order.is_closed:
        # It closed (filled, or cancelled by something else) in an earlier batch than the one
        # that will take this cancel: the cancel cannot apply, whatever it waits for.
        raise OrderClosed(f"Order {order.pk} closed ({order.status}) before the cancel reached the engine.")
    return order, False


def order_cancel_all(*, account: Account, market: str | None = None, wait: float = 0.0,
                     reason: str = "user") -> list[int]:
    """Queue cancels for every live order of ``account`` (in ``market`` if given; ``reason``
    as for ``order_cancel``); return the
    ids of the orders the cancel applied to (those still live when the engine reached them,
    or all queued ones if the engine did not answer within ``wait``)."""
    live = Order.objects.filter(account=account, status__in=Order.LIVE_STATUSES)
    if market is not None:
        market_obj = Market.objects.filter(symbol=market).first()
        if market_obj is None:
            raise errors.MarketNotFound(f"Market {market!r} does not exist.")
        live = live.filter(market=market_obj)
    _cancel_reason(reason)
    with transaction.atomic(durable=True):
        orders = list(live.order_by("id"))
        commands = order_cancel_queue(orders, reason=reason)
    if wait > 0 and commands:
        return _after_commit(_cancel_all_verdict, orders, commands, wait, default=[o.pk for o in orders])
    return [o.pk for o in orders]


def order_cancel_queue(orders: list[Order], *, reason: str, actor: object = None) -> list[Command]:
    """Queue one cancel command per order (``reason`` as for ``order_cancel``), audit them
    and wake their engines; inside the caller's transaction (``order_cancel_all``, a fired
    dead-man switch), which must hold the orders' reading."""
    command_reason = _cancel_reason(reason)
    commands = Command.objects.bulk_create(
        [Command(market_id=o.market_id, kind=Command.Kind.CANCEL, order=o, reason=command_reason) for o in orders]
    )
    audit_record_many("order.cancelled", orders, actor=actor,
                      after={"requested": True, "cancel_all": True, "reason": reason})
    for market_id in {o.market_id for o in orders}:
        notify.wake_engine(market_id)
    return commands


def _cancel_all_verdict(orders: list[Order], commands: list[Command], wait: float) -> list[int]:
    """Wait (on the verdict signal of any of ``orders``) until the engine took every cancel,
    or ``wait`` s; the ids the cancels applied to (all not yet refused when time is up)."""
    waiter = notify.VerdictWaiter.get()
    event = threading.Event()
    for order in orders:
        waiter.register(order.pk, event)
    try:
        deadline = time.monotonic() + wait
        pending = [c.pk for c in commands]
        while True:
            pending = list(Command.objects.filter(pk__in=pending, processed=False).values_list("pk", flat=True))
            remaining = deadline - time.monotonic()
            if not pending or remaining <= 0:
                break
            event.wait(min(remaining, VERDICT_RECHECK_S))
            event.clear()
    finally:
        for order in orders:
            waiter.unregister(order.pk, event)
    refused = set(
        Command.objects.filter(pk__in=[c.pk for c in commands], processed=True)
        .exclude(result="cancelled")
        .values_list("order_id", flat=True)
    )
    return [o.pk for o in orders if o.pk not in refused]
