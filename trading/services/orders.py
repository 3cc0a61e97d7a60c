"""Order services: the only way any transport (REST, WebSocket, FIX) changes an order.

``order_submit`` validates, enforces ``client_order_id`` idempotency, and in ONE transaction
locks the order's maximum cost and inserts the order as ``pending`` with its engine
command; the engine process owning the market is woken when it commits. ``order_cancel`` and
``order_cancel_all`` queue cancel commands in the same sequence. Each can then wait for the
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
from decimal import Decimal
from typing import Any, TypeVar

from django.db import IntegrityError, connection, transaction

from accounts import ledger
from accounts.models import Account, EntryKind
from audit.services import audit_record, audit_record_many, audit_refusals
from exchange import errors
from exchange.errors import DuplicateClientOrderId, OrderClosed
from exchange.syntax import parse_id

from .. import filters, notify, pricing
from ..models import Command, Market, Order
from ..outbox.services import balances_publish
from . import order_write

log = logging.getLogger("bourse.orders")

CLIENT_ORDER_ID = re.compile(r"\A[A-Za-z0-9_-]{1,36}\Z")
# Waiters sleep on the verdict signal and read the database when it comes. Signals are hints
# (a lost one must not strand a caller), so a waiter also re-reads this often without one:
# a safety net, not the hot path, which never polls.
VERDICT_RECHECK_S = 1.0


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
        )


@dataclass(frozen=True)
class SubmitResult:
    order: Order
    created: bool  # False: an identical earlier submission with this client_order_id


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
) -> OrderRequest:
    """Check an order against the API's rules and the market's filters (no writes)."""
    side = _choice(side, "side", Order.Side.values)
    type = _choice(type, "type", Order.Type.values)
    time_in_force = _choice(time_in_force, "time_in_force", Order.TimeInForce.values)
    stp = _choice(stp, "stp", Order.Stp.values)
    if not isinstance(post_only, bool):
        raise errors.ValidationError.field("post_only", "invalid_type", "post_only must be true or false")
    if client_order_id is not None and (not isinstance(client_order_id, str) or not CLIENT_ORDER_ID.match(client_order_id)):
        raise errors.ValidationError.field(
            "client_order_id", "invalid", "client_order_id must be 1-36 characters of A-Za-z0-9_-"
        )
    price, quantity, quote_quantity = (
        _money(price, "price"),
        _money(quantity, "quantity"),
        _money(quote_quantity, "quote_quantity"),
    )
    market_obj = Market.objects.select_related("base", "quote").filter(symbol=market).first()
    if market_obj is None:
        raise errors.MarketNotFound(f"Market {market!r} does not exist.")

    problems: list[dict[str, str]] = []
    if type == Order.Type.LIMIT:
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
    if post_only and time_in_force != Order.TimeInForce.GTC:
        problems.append({"field": "post_only", "code": "not_allowed", "message": "post_only orders are gtc"})
    if problems:
        raise errors.ValidationError("; ".join(p["message"] for p in problems), errors=problems)

    if type == Order.Type.LIMIT:
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
        request = order_validate(**params)
        if request.client_order_id is not None:
            existing = Order.objects.filter(account=account, client_order_id=request.client_order_id).first()
            if existing is not None:
                return SubmitResult(_same_or_refuse(request, existing), created=False)
        if not request.market.is_open:
            raise errors.MarketHalted(f"Market {request.market.symbol} is halted.")

        waiter = notify.VerdictWaiter.get() if wait > 0 else None
        try:
            order = _insert(account, request)
        except IntegrityError:
            # Two submissions raced with one client_order_id: the unique constraint let one win.
            if request.client_order_id is None:
                raise
            existing = Order.objects.filter(account=account, client_order_id=request.client_order_id).first()
            if existing is None:
                raise
            return SubmitResult(_same_or_refuse(request, existing), created=False)
    if waiter is not None:
        order = _after_commit(order_wait, order, wait, waiter, default=order)
    return SubmitResult(order, created=True)


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
            hold_asset_id=asset, hold_amount=amount, hold_remaining=amount,
        )
        written = order_write.order_insert_one_statement(account.pk, market, unsaved, _order_audit(unsaved))
        if written is not None:
            return written
    with transaction.atomic(durable=True):
        # Re-read the market under a shared row lock: a halt (or a filter edit) takes the row
        # exclusively, so it either commits before this read (and the order is refused) or
        # waits until this order is committed — an order is never accepted after a halt.
        if not _market_open_locked(market):
            raise errors.MarketHalted(f"Market {market.symbol} is halted.")
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


def _market_open_locked(market: Market) -> bool:
    """Whether ``market`` is open, read under a shared lock held to the end of the transaction
    (PostgreSQL ``FOR SHARE``: submissions do not wait for each other, only for a halt or an
    edit; SQLite's immediate transactions already hold the database's one write lock)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT status FROM {Market._meta.db_table} WHERE id = %s FOR SHARE", [market.pk])
            row = cursor.fetchone()
        return row is not None and row[0] == Market.Status.OPEN
    return Market.objects.filter(pk=market.pk, status=Market.Status.OPEN).exists()


def _order_audit(order: Order) -> dict[str, object]:
    return {
        "market": order.market.symbol, "side": order.side, "type": order.type, "price": order.price,
        "quantity": order.quantity, "quote_quantity": order.quote_quantity, "time_in_force": order.time_in_force,
        "post_only": order.post_only, "client_order_id": order.client_order_id, "hold": order.hold_amount,
    }


def order_wait(
    order: Order,
    timeout: float,
    waiter: notify.VerdictWaiter | None = None,
    *,
    until: Callable[[Order], bool] | None = None,
) -> Order:
    """Wait up to ``timeout`` s until ``until(order)`` holds (default: no longer pending);
    return the order as last read. The waiter is registered before the first read, so a
    verdict published at any moment in between is not missed."""
    until = until or (lambda o: o.status != Order.Status.PENDING)
    waiter = waiter or notify.VerdictWaiter.get()
    event = waiter.register(order.pk)
    deadline = time.monotonic() + timeout
    try:
        while True:
            order.refresh_from_db()
            remaining = deadline - time.monotonic()
            if until(order) or remaining <= 0:
                return order
            # Sleep until the engine's verdict signal for this order (cleared before the
            # re-read, so a verdict landing in between is seen by that read).
            event.wait(min(remaining, VERDICT_RECHECK_S))
            event.clear()
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


CANCEL_REASONS = ("user", "disconnect", "operator", "dead_man")  # who asked; the order's cancel_reason


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
