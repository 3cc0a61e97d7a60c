"""FIX application messages -> order services, and the immediate answers.

Each handler is synchronous Django code (the gateway runs it on a worker thread, one message
of a session at a time, in sequence order) and returns the messages to send now. Structural
problems (a required tag missing, a number that is not a number) raise ``FieldError`` and
become a session-level Reject; business refusals (a market filter, the balance, a duplicate
``ClOrdID``) become an ExecutionReport ``Rejected`` or an OrderCancelReject whose ``Text``
starts with the Bourse error ``code``. Accepted orders and cancels are answered later, from
the engine's outbox events (``reports.batch_reports``), like orders entered elsewhere.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from exchange import errors, ratelimit
from trading.representations import order_to_wire
from trading.selectors import order_get
from trading.services import order_amend, order_cancel, order_cancel_all, order_submit

from . import reports
from .codec import FieldError, Message
from .logon import parse_utc_timestamp

if TYPE_CHECKING:
    from trading.models import Order

DECIMAL = re.compile(r"\A[0-9]{1,20}(\.[0-9]{0,18})?\Z")


@dataclass
class Outcome:
    messages: list[tuple[str, list]] = field(default_factory=list)


def _required(message: Message, *tags: int) -> None:
    for tag in tags:
        if tag not in message:
            raise FieldError(f"Required tag {tag} missing", 1, tag)


def _single(message: Message, *tags: int) -> None:
    for tag in tags:
        if message.count(tag) > 1:
            raise FieldError(f"Tag {tag} appears more than once", 13, tag)


def _decimal(message: Message, tag: int) -> str | None:
    value = message.get(tag)
    if value is None:
        return None
    if not DECIMAL.match(value):
        raise FieldError(f"Tag {tag} must be a non-negative decimal, got {value[:40]!r}", 6, tag)
    return value


def _enum(message: Message, tag: int, allowed: dict, default: str | None = None) -> str | None:
    value = message.get(tag, default)
    if value is None:
        return None
    if value not in allowed:
        raise FieldError(f"Value {value[:20]!r} is not supported for tag {tag} (allowed: {', '.join(allowed)})", 5, tag)
    return allowed[value]


class Budgets:
    """The budgets an order-entry message (D, G) counts once it is well-formed: the key's
    request budget and the account's ``orders`` budget, in turn and in one round trip
    (``ratelimit.consume_all``), as REST's gate counts them with the authentication."""

    def __init__(self, key_id: str | None, account_id: int):
        self.budgets: list[tuple[str, str | int]] = [(ratelimit.ORDERS, account_id)]
        if key_id is not None:
            self.budgets.insert(0, (ratelimit.KEY, key_id))
        self.counted = False

    def count(self) -> None:
        self.counted = True
        ratelimit.consume_all(self.budgets)


def new_order_single(account, message: Message, cancel_ids: dict | None = None, budgets: Budgets | None = None,
                     pending_new: bool = False) -> Outcome:
    """NewOrderSingle (D) -> ``order_submit``. ``budgets``: what it counts once well-formed
    (default: the account's ``orders`` budget alone). ``pending_new``: answer an order written
    now with a Pending New report at once (the session's 8014 at Logon); otherwise its first
    report is the engine's."""
    _required(message, 11, 55, 54, 60, 40)
    _single(message, 11, 55, 54, 38, 40, 44, 59, 18, 152, 99, 126)
    side = _enum(message, 54, reports.SIDE_FROM_FIX)
    order_type = _enum(message, 40, reports.ORD_TYPE_FROM_FIX)
    if message.get(59) == "0":
        # Bourse markets run without a session end, so a Day order would silently live on as
        # good-till-cancel: refused instead. Without TimeInForce an order is GTC.
        raise FieldError("TimeInForce 0 (Day) is not supported: markets have no session end; "
                         "send 1 (GTC), 3 (IOC) or 4 (FOK)", 5, 59)
    tif = _enum(message, 59, reports.TIF_FROM_FIX, default="1")
    quantity, price, cash = _decimal(message, 38), _decimal(message, 44), _decimal(message, 152)
    stop_price = _decimal(message, 99)
    if order_type in ("stop_market", "stop_limit") and stop_price is None:
        raise FieldError("Required tag 99 missing (StopPx: OrdType 3 and 4 are stop orders)", 1, 99)
    expire_time = None
    if message.get(126) is not None:
        expire_time = parse_utc_timestamp(message.get(126) or "")
        if expire_time is None:
            raise FieldError("Tag 126 must be a UTCTimestamp (YYYYMMDD-HH:MM:SS[.sss])", 6, 126)
    elif tif == "gtd":
        raise FieldError("Required tag 126 missing (ExpireTime: TimeInForce 6 is good till date)", 1, 126)
    if quantity is None and cash is None:
        raise FieldError("Required tag 38 missing (OrderQty; CashOrderQty(152) for a market buy by value)", 1, 38)
    exec_inst = message.get(18) or ""
    cl_ord_id, symbol = message.get(11), message.get(55)
    try:
        # The account's order budget is the one REST counts against (``orders`` policy).
        (budgets or Budgets(None, account.pk)).count()
        result = order_submit(
            account=account, market=symbol, side=side, type=order_type, quantity=quantity, price=price,
            quote_quantity=cash, time_in_force=tif, post_only="6" in exec_inst.split(), client_order_id=cl_ord_id,
            stop_price=stop_price, expire_time=expire_time,
        )
    except errors.BourseError as error:
        return Outcome([("8", reports.rejected_report(account_id=account.pk, cl_ord_id=cl_ord_id, symbol=symbol,
                                                      side=message.get(54), code=error.code, message=str(error)))])
    if not result.created:
        # A resent NewOrderSingle (PossDup, or the same ClOrdID again): report where it is.
        wire = order_to_wire(result.order)
        return Outcome([("8", reports.status_report(wire, account_id=account.pk, text="duplicate ClOrdID: existing order"))])
    if pending_new:
        return Outcome([("8", reports.pending_new_report(order_to_wire(result.order), account_id=account.pk))])
    return Outcome()


def _find(account, message: Message, cl_tag: int) -> Order | None:
    """The order a message names: OrderID(37) when given, else the ClOrdID in ``cl_tag``."""
    order_id = message.get(37)
    try:
        if order_id and order_id != "NONE":
            return order_get(account_id=account.pk, order_id=order_id)
        cl = message.get(cl_tag)
        return order_get(account_id=account.pk, client_order_id=cl) if cl else None
    except errors.NotFound:
        return None


def order_cancel_request(account, message: Message, cancel_ids: dict | None = None) -> Outcome:
    """OrderCancelRequest (F) -> ``order_cancel``; OrderCancelReject (9) when refused.

    ``cancel_ids`` (the session's order id -> cancel ClOrdID) gets the entry *before* the
    cancel is committed: the engine's report can reach the session before this returns."""
    _required(message, 41, 11, 55, 54, 60)
    _single(message, 41, 11, 37)
    cl_ord_id, orig = message.get(11), message.get(41)
    order = _find(account, message, 41)
    if order is None:
        return Outcome([("9", reports.cancel_reject(account_id=account.pk, cl_ord_id=cl_ord_id, orig_cl_ord_id=orig, order=None,
                                                    reason="1", code="not_found", message=f"No order with ClOrdID {orig!r}."))])
    pending = cancel_ids if cancel_ids is not None else {}
    previous = pending.get(str(order.pk))
    pending[str(order.pk)] = cl_ord_id  # one dict store: atomic for the event loop reading it
    try:
        order_cancel(account=account, order_id=order.pk)
    except errors.BourseError as error:
        if previous is None:
            pending.pop(str(order.pk), None)
        else:
            pending[str(order.pk)] = previous
        order = order_get(account_id=account.pk, order_id=order.pk)
        reason = "0" if error.code == "order_closed" else "99"
        return Outcome([("9", reports.cancel_reject(account_id=account.pk, cl_ord_id=cl_ord_id, orig_cl_ord_id=orig,
                                                    order=order_to_wire(order), reason=reason, code=error.code, message=str(error)))])
    return Outcome()


def order_cancel_replace_request(account, message: Message, replace_ids: dict | None = None,
                                 budgets: Budgets | None = None) -> Outcome:
    """OrderCancelReplaceRequest (G) -> ``order_amend`` (the REST ``PATCH /orders/{id}``):
    OrderQty(38) is the new total quantity, Price(44) the new price, ClOrdID(11) becomes the
    order's ClOrdID. A quantity decrease keeps the order's time priority; a price change or a
    quantity increase loses it. Accepted: an ExecutionReport Replaced (ExecType 5) when the
    engine applied it; refused: OrderCancelReject (9) with CxlRejResponseTo 2, ``Text``
    starting with the Bourse code.

    ``replace_ids`` (the session's order id -> (ClOrdID, OrigClOrdID, price, quantity)) gets
    the entry before the amend is committed: the engine's report can come before this returns.
    Like REST's amend it counts against the account's ``orders`` budget (``budgets``, as for D)."""
    from django.conf import settings

    _required(message, 41, 11, 55, 54, 60, 40, 38)
    _single(message, 41, 11, 37, 55, 54, 38, 40, 44)
    cl_ord_id, orig = message.get(11) or "", message.get(41)
    quantity, price = _decimal(message, 38), _decimal(message, 44)

    def refuse(order, reason: str, code: str, text: str) -> Outcome:
        return Outcome([("9", reports.cancel_reject(account_id=account.pk, cl_ord_id=cl_ord_id, orig_cl_ord_id=orig,
                                                    order=order, reason=reason, code=code, message=text,
                                                    response_to="2"))])

    try:
        (budgets or Budgets(None, account.pk)).count()
    except errors.RateLimited as error:
        return refuse(None, "99", error.code, str(error))
    order = _find(account, message, 41)
    if order is None:
        return refuse(None, "1", "not_found", f"No order with ClOrdID {orig!r}.")
    wire = order_to_wire(order)
    if (message.get(55), message.get(54), message.get(40)) != (
            wire["market"], reports.SIDE[wire["side"]], reports.ORD_TYPE[wire["type"]]):
        return refuse(wire, "99", "validation_error", "Symbol, Side and OrdType must be the order's: only "
                      "OrderQty, Price and ClOrdID can change.")
    new_price = price if price is not None and wire["price"] is not None and Decimal(price) != Decimal(wire["price"]) else None
    new_quantity = quantity if quantity is not None and wire["quantity"] is not None and Decimal(quantity) != Decimal(
        wire["quantity"]) else None
    pending = replace_ids if replace_ids is not None else {}
    key = str(order.pk)
    previous = pending.get(key)
    changes_book = new_price is not None or new_quantity is not None
    if changes_book:
        pending[key] = (cl_ord_id, orig, new_price or wire["price"], new_quantity or wire["quantity"])
    try:
        amended, _ = order_amend(account, order.pk, price=new_price, quantity=new_quantity,
                                 client_order_id=cl_ord_id if cl_ord_id != order.client_order_id else None,
                                 wait=settings.BOURSE_ENGINE_WAIT_S)
    except errors.BourseError as error:
        if changes_book:
            if previous is None:
                pending.pop(key, None)
            else:
                pending[key] = previous
        current = order_get(account_id=account.pk, order_id=order.pk)
        reason = "0" if error.code == "order_closed" else "1" if error.code == "not_found" else "99"
        return refuse(order_to_wire(current), reason, error.code, str(error))
    if not changes_book:
        # Only the ClOrdID changed: nothing for the engine's book, so no engine event carries the report.
        return Outcome([("8", reports.replaced_report(order_to_wire(amended), account_id=account.pk, cl_ord_id=cl_ord_id,
                                                      orig_cl_ord_id=orig))])
    return Outcome()


def order_status_request(account, message: Message, cancel_ids: dict | None = None) -> Outcome:
    """OrderStatusRequest (H) -> ExecutionReport with ExecType I."""
    _required(message, 11, 55, 54)
    req_id = message.get(790)
    order = _find(account, message, 11)
    if order is None:
        return Outcome([("8", reports.rejected_report(account_id=account.pk, cl_ord_id=message.get(11), symbol=message.get(55),
                                                      side=message.get(54), code="not_found", req_id=req_id,
                                                      message=f"No order with ClOrdID {message.get(11)!r}.",
                                                      exec_type=reports.EXEC_STATUS))])
    return Outcome([("8", reports.status_report(order_to_wire(order), account_id=account.pk, req_id=req_id))])


def order_mass_cancel_request(account, message: Message, cancel_ids: dict | None = None) -> Outcome:
    """OrderMassCancelRequest (q) -> ``order_cancel_all`` (the REST ``DELETE /orders``):
    MassCancelRequestType(530) 7 cancels every live order of the account, 1 those of the
    market in Symbol(55). Answered at once with an OrderMassCancelReport (r); each cancelled
    order's Canceled ExecutionReport follows from the engine."""
    _required(message, 11, 530, 60)
    _single(message, 11, 530, 55)
    cl_ord_id, request_type, symbol = message.get(11), message.get(530), message.get(55)
    if request_type not in reports.MASS_CANCEL_TYPES:
        return Outcome([("r", reports.mass_cancel_report(
            cl_ord_id=cl_ord_id, request_type=request_type, symbol=symbol, cancelled=None, reject_reason="0",
            code="validation_error", message=f"MassCancelRequestType {request_type!r} is not supported: send 1 (a symbol) or 7 (all)"))])
    if request_type == "1" and not symbol:
        raise FieldError("Required tag 55 missing (MassCancelRequestType 1 cancels one symbol's orders)", 1, 55)
    try:
        cancelled = order_cancel_all(account=account, market=symbol if request_type == "1" else None)
    except errors.BourseError as error:
        reason = "1" if error.code == "market_not_found" else "99"  # 1: unknown security
        return Outcome([("r", reports.mass_cancel_report(
            cl_ord_id=cl_ord_id, request_type=request_type, symbol=symbol, cancelled=None, reject_reason=reason,
            code=error.code, message=str(error)))])
    return Outcome([("r", reports.mass_cancel_report(cl_ord_id=cl_ord_id, request_type=request_type, symbol=symbol,
                                                     cancelled=len(cancelled)))])


HANDLERS: dict[str, Callable[..., Outcome]] = {
    "D": new_order_single, "F": order_cancel_request, "G": order_cancel_replace_request,
    "H": order_status_request, "q": order_mass_cancel_request}


def application_handle(key_id: str, account, message: Message, cancel_ids: dict | None = None,
                       replace_ids: dict | None = None, *, pending_new: bool = False) -> Outcome:
    """Any application message: it counts against the key's request budget (the ``key``
    policy every REST request counts against) before its handler runs; over the budget it is
    refused with ``rate_limited`` in the answer its type calls for, and nothing is done.

    NewOrderSingle and OrderCancelReplaceRequest count it once they are well-formed, together
    with the account's ``orders`` budget (one round trip, ``Budgets``); one the session layer
    refuses (a ``FieldError``) still counts against the key's budget, and is answered as over
    it when it is — what counting it first would have answered."""
    if message.msg_type in ("D", "G"):
        budgets = Budgets(key_id, account.pk)
        try:
            if message.msg_type == "G":
                return order_cancel_replace_request(account, message, replace_ids, budgets)
            return new_order_single(account, message, cancel_ids, budgets, pending_new)
        except FieldError:
            if budgets.counted:
                raise
            try:
                ratelimit.consume(ratelimit.KEY, key_id)
            except errors.RateLimited as error:
                return _over_key_budget(account, message, error)
            raise
    try:
        ratelimit.consume(ratelimit.KEY, key_id)
    except errors.RateLimited as error:
        return _over_key_budget(account, message, error)
    return HANDLERS[message.msg_type or ""](account, message, cancel_ids)


def _over_key_budget(account, message: Message, error: errors.RateLimited) -> Outcome:
    """The answer to an application message over the key's request budget: nothing done."""
    text = str(error)
    if message.msg_type == "q":
        return Outcome([("r", reports.mass_cancel_report(
            cl_ord_id=message.get(11), request_type=message.get(530), symbol=message.get(55), cancelled=None,
            reject_reason="99", code=error.code, message=text))])
    if message.msg_type in ("F", "G"):
        return Outcome([("9", reports.cancel_reject(response_to="1" if message.msg_type == "F" else "2",
                                                    account_id=account.pk, cl_ord_id=message.get(11) or "NONE",
                                                    orig_cl_ord_id=message.get(41), order=None,
                                                    reason="99", code=error.code, message=text))])
    return Outcome([("8", reports.rejected_report(
        account_id=account.pk, cl_ord_id=message.get(11), symbol=message.get(55), side=message.get(54),
        code=error.code, message=text, req_id=message.get(790) if message.msg_type == "H" else None,
        exec_type=reports.EXEC_STATUS if message.msg_type == "H" else reports.EXEC_REJECTED))])
