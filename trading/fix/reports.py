"""ExecutionReport (8) and OrderCancelReject (9) bodies from the orders and fills every
transport shows (``trading.representations`` dicts, as the outbox carries them).

``batch_reports`` turns one engine batch's events for one account into the reports a FIX
session sends, in order: for each order, ``New`` when it was accepted (first, also before
its own immediate fills), one ``Trade`` per fill with ``LastPx``/``LastQty`` and the running
``CumQty``/``LeavesQty``/``AvgPx``, then ``Canceled`` or ``Rejected`` when it closed so.
"""
from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from .logon import format_utc_timestamp

#: One (tag, value) of a message body; a None value is left out when encoded.
Field = tuple[int, object]

SIDE = {"buy": "1", "sell": "2"}
SIDE_FROM_FIX = {v: k for k, v in SIDE.items()}
ORD_TYPE = {"market": "1", "limit": "2", "stop_market": "3", "stop_limit": "4"}  # 3 Stop, 4 Stop limit (StopPx 99)
ORD_TYPE_FROM_FIX = {v: k for k, v in ORD_TYPE.items()}
ORD_TYPE_REPORTED = ORD_TYPE
TIF = {"gtc": "1", "ioc": "3", "fok": "4", "gtd": "6"}  # 6 Good till date (ExpireTime 126)
TIF_FROM_FIX = {v: k for k, v in TIF.items()}  # Day (0) is refused: no session end
TIF_REPORTED = TIF
ORD_STATUS = {"pending": "A", "untriggered": "0", "open": "0", "partially_filled": "1", "filled": "2", "cancelled": "4", "rejected": "8"}
# Bourse error / engine reject codes -> OrdRejReason(103)
ORD_REJ_REASON = {
    "market_not_found": "1",  # Unknown symbol
    "market_halted": "2",  # Exchange closed
    "insufficient_balance": "3",  # Order exceeds limit
    "duplicate_client_order_id": "6",  # Duplicate order
    "not_found": "5",  # Unknown order
    "invalid_quantity": "13",  # Incorrect quantity
}
EXEC_NEW, EXEC_CANCELED, EXEC_REJECTED, EXEC_TRADE, EXEC_STATUS = "0", "4", "8", "F", "I"
EXEC_REPLACED, EXEC_PENDING_NEW = "5", "A"
_status_ids = itertools.count(1)


def now_fix() -> str:
    return format_utc_timestamp(datetime.now(UTC))


def _d(text) -> Decimal:
    return Decimal(text) if text not in (None, "") else Decimal(0)


def _text(value: str) -> str:
    # Text(58) is a String: no SOH, and keep it to one line of printable characters.
    return "".join(ch if " " <= ch <= "~" else " " for ch in value)[:300]


def order_fields(order: dict, *, account_id, exec_id: str, exec_type: str, ord_status: str,
                 cum: Decimal, leaves: Decimal, avg: Decimal | None, cl_ord_id: str | None = None,
                 orig_cl_ord_id: str | None = None, text: str | None = None) -> list[Field]:
    fields = [
        (37, order["order_id"]),
        (11, cl_ord_id if cl_ord_id is not None else order.get("client_order_id")),
        (41, orig_cl_ord_id),
        (1, str(account_id)),
        (17, exec_id),
        (150, exec_type),
        (39, ord_status),
        (55, order["market"]),
        (54, SIDE[order["side"]]),
        (40, ORD_TYPE_REPORTED[order["type"]]),
        (44, order.get("price")),
        (38, order.get("quantity")),
        (152, order.get("quote_quantity")),
        (59, TIF_REPORTED[order["time_in_force"]]),
        (99, order.get("stop_price")),
        (126, _fix_time(order.get("expire_time"))),
        (18, "6" if order.get("post_only") else None),
        (151, _plain(leaves)),
        (14, _plain(cum)),
        (6, _plain(avg) if avg is not None else "0"),
        (60, now_fix()),
        (58, _text(text) if text else None),
    ]
    return fields


def _fix_time(value: str | None) -> str | None:
    """A wire timestamp (RFC 3339) as a FIX UTCTimestamp."""
    if not value:
        return None
    return format_utc_timestamp(datetime.fromisoformat(value.replace("Z", "+00:00")))


def replaced_report(order: dict, *, account_id, cl_ord_id: str, orig_cl_ord_id: str | None) -> list[Field]:
    """ExecType 5 (Replaced) for an order as it stands after an OrderCancelReplaceRequest."""
    status = order["status"]
    cum = _d(order.get("filled_quantity"))
    closed = status in ("filled", "cancelled", "rejected")
    return order_fields(order, account_id=account_id, exec_id=f"A{order['order_id']}.{next(_status_ids)}",
                        exec_type=EXEC_REPLACED, ord_status=ORD_STATUS[status], cum=cum, leaves=_leaves(order, cum, closed),
                        avg=_d(order["average_price"]) if order.get("average_price") else None, cl_ord_id=cl_ord_id,
                        orig_cl_ord_id=orig_cl_ord_id)


def _replace_applied(order: dict, target: tuple) -> bool:
    """Whether this event shows the order as the replace asked (its price and quantity)."""
    _, _, price, quantity = target
    return (price is None or _d(order.get("price")) == _d(price)) and (
        quantity is None or _d(order.get("quantity")) == _d(quantity))


def _plain(value: Decimal) -> str:
    return format(value, "f")


def _leaves(order: dict, cum: Decimal, closed: bool) -> Decimal:
    if closed or order.get("quantity") is None:
        return Decimal(0)
    return max(_d(order["quantity"]) - cum, Decimal(0))


def pending_new_report(order: dict, *, account_id) -> list[Field]:
    """ExecType A (Pending New) for an order just written: its hold is placed and it is
    durable, but the engine has not accepted it yet (its ``New``, ``Trade`` or ``Rejected``
    follow). Sent only to sessions that asked for it at Logon (8014 PendingNewReports)."""
    return order_fields(order, account_id=account_id, exec_id=f"P{order['order_id']}", exec_type=EXEC_PENDING_NEW,
                        ord_status=ORD_STATUS["pending"], cum=Decimal(0), leaves=_leaves(order, Decimal(0), False),
                        avg=None)


def status_report(order: dict, *, account_id, text: str | None = None, req_id: str | None = None) -> list[Field]:
    """ExecType=I (Order Status), the answer to an OrderStatusRequest."""
    status = order["status"]
    cum = _d(order.get("filled_quantity"))
    closed = status in ("filled", "cancelled", "rejected")
    fields = order_fields(
        order, account_id=account_id, exec_id=f"S{order['order_id']}.{next(_status_ids)}", exec_type=EXEC_STATUS,
        ord_status=ORD_STATUS[status], cum=cum, leaves=_leaves(order, cum, closed),
        avg=_d(order["average_price"]) if order.get("average_price") else None, text=text,
    )
    if req_id:
        fields.append((790, req_id))
    return fields


def rejected_report(*, account_id, cl_ord_id: str | None, symbol: str | None, side: str | None, code: str, message: str,
                    req_id: str | None = None, exec_type: str = EXEC_REJECTED) -> list[Field]:
    """A report for an order that never existed (refused before it was written)."""
    fields: list[Field] = [
        (37, "NONE"), (11, cl_ord_id), (1, str(account_id)), (17, f"R-{next(_status_ids)}"), (150, exec_type),
        (39, "8"), (103, ORD_REJ_REASON.get(code, "99")), (55, symbol or "[N/A]"), (54, side or "1"),
        (151, "0"), (14, "0"), (6, "0"), (60, now_fix()), (58, _text(f"{code}: {message}")),
    ]
    if req_id:
        fields.append((790, req_id))
    return fields


def cancel_reject(*, account_id, cl_ord_id: str | None, orig_cl_ord_id: str | None, order: dict | None, reason: str, code: str,
                  message: str, response_to: str = "1") -> list[Field]:
    """OrderCancelReject (9). ``reason`` is CxlRejReason: 0 too late, 1 unknown order;
    ``response_to`` CxlRejResponseTo: 1 a cancel (F), 2 a cancel/replace (G)."""
    return [
        (37, order["order_id"] if order else "NONE"), (11, cl_ord_id), (41, orig_cl_ord_id), (1, str(account_id)),
        (39, ORD_STATUS[order["status"]] if order else "8"), (434, response_to), (102, reason), (60, now_fix()),
        (58, _text(f"{code}: {message}")),
    ]


MASS_CANCEL_TYPES = {"1": "symbol", "7": "all"}  # MassCancelRequestType(530) Bourse supports


def mass_cancel_report(*, cl_ord_id: str | None, request_type: str | None, symbol: str | None, cancelled: int | None,
                       reject_reason: str | None = None, code: str | None = None, message: str | None = None) -> list[Field]:
    """OrderMassCancelReport (r). Accepted: MassCancelResponse(531) = the request type and
    TotalAffectedOrders(533) = how many cancels were queued (each order's Canceled
    ExecutionReport follows from the engine). Refused: 531 = 0 with MassCancelRejectReason(532)
    and a ``Text`` starting with the Bourse code."""
    accepted = reject_reason is None
    return [
        (11, cl_ord_id), (37, cl_ord_id or "NONE"), (530, request_type or "7"),
        (531, request_type if accepted else "0"), (532, None if accepted else reject_reason),
        (533, cancelled if accepted else None), (55, symbol), (60, now_fix()),
        (58, None if accepted else _text(f"{code}: {message}")),
    ]


def batch_reports(orders: list[dict], fills: list[dict], *, account_id, cancel_ids: dict[str, str],
                  acked: set[str] | None = None, since: str = "",
                  prior_notional: dict[str, Decimal] | None = None,
                  replace_ids: dict[str, tuple] | None = None) -> list[tuple[str, list]]:
    """The (msg_type, fields) to send for one engine batch of one account.

    ``replace_ids`` maps order ids this session asked to replace (OrderCancelReplaceRequest)
    to ``(ClOrdID, OrigClOrdID, price, quantity)``: the first event showing the order at that
    price and quantity gets a Replaced report (before the fills the new price may have
    caused in the same batch), and the entry is removed.

    ``cancel_ids`` maps order ids this session asked to cancel to the cancel's ClOrdID; the
    Canceled report then carries it (with the order's as OrigClOrdID), and an order that
    filled before the cancel reached the engine gets an OrderCancelReject (too late).
    Entries are removed from ``cancel_ids`` when answered.

    ``prior_notional`` maps an order id to the exact Σ price × quantity of its fills before
    this batch (``trading.selectors.fill_notional_before``), so that AvgPx on every Trade
    report is the quantity-weighted average of the fills so far, exactly (rounded once, to
    the price's decimals) — not rebuilt from the order's rounded final average.

    ``acked`` holds the live orders this session already reported as New; an order created
    at or after ``since`` (the session's logon, wire timestamp) and not in it gets its New
    first, even when the same engine batch also closed it (a cancel that followed at once,
    an IOC remainder), so every order the session saw created is acknowledged exactly once.
    """
    acked = set() if acked is None else acked
    fills_by_order: dict[str, list[dict]] = {}
    for fill in fills:
        fills_by_order.setdefault(fill["order_id"], []).append(fill)
    out: list[tuple[str, list]] = []
    for order in orders:
        order_id = order["order_id"]
        status = order["status"]
        own_fills = fills_by_order.pop(order_id, [])
        final_cum = _d(order.get("filled_quantity"))
        batch_qty = sum((_d(f["quantity"]) for f in own_fills), Decimal(0))
        batch_notional = sum((_d(f["price"]) * _d(f["quantity"]) for f in own_fills), Decimal(0))
        cum = final_cum - batch_qty
        final_avg = _d(order["average_price"]) if order.get("average_price") else None
        if prior_notional is not None and order_id in prior_notional:
            notional = prior_notional[order_id]
        elif cum == 0:
            notional = Decimal(0)  # no fill before this batch: nothing to rebuild
        else:  # no exact figure given: the best the rounded average allows
            notional = (final_avg * final_cum - batch_notional) if final_avg is not None else Decimal(0)
        if status == "rejected":
            accepted_now = False
        elif order.get("created_at", "") >= since and since:
            accepted_now = order_id not in acked
        else:  # without a logon time: judge from the batch alone
            accepted_now = any(f["liquidity"] == "taker" for f in own_fills) or (
                not own_fills and cum == 0 and status in ("untriggered", "open", "partially_filled")
            )
        if status in ("untriggered", "open", "partially_filled"):  # a stop is acknowledged once, untriggered
            acked.add(order_id)
        else:
            acked.discard(order_id)
        if accepted_now:
            out.append(("8", order_fields(order, account_id=account_id, exec_id=f"N{order_id}", exec_type=EXEC_NEW,
                                          ord_status="0", cum=Decimal(0), leaves=_leaves(order, Decimal(0), False), avg=None)))
        target = replace_ids.get(order_id) if replace_ids else None
        if target is not None and status != "rejected" and _replace_applied(order, target):
            assert replace_ids is not None  # target came from it
            replace_ids.pop(order_id, None)
            before_fills = {**order, "status": "partially_filled" if cum > 0 else "open", "filled_quantity": str(cum)}
            out.append(("8", replaced_report(before_fills, account_id=account_id, cl_ord_id=target[0],
                                             orig_cl_ord_id=target[1])))
        spent = Decimal(0)  # a CashOrderQty buy's budget used so far (it fills in one batch)
        for index, fill in enumerate(own_fills):
            qty, price = _d(fill["quantity"]), _d(fill["price"])
            cum += qty
            notional += price * qty
            last = index == len(own_fills) - 1
            # the price's own decimals (the quote asset's scale on the wire)
            exponent = price.as_tuple().exponent
            assert isinstance(exponent, int)  # wire decimals are finite
            price_places = max(-exponent, 0)
            avg = (notional / cum).quantize(Decimal(1).scaleb(-price_places), rounding=ROUND_HALF_EVEN)
            if order.get("quantity") is not None:
                fill_status = "2" if cum >= _d(order["quantity"]) else "1"
                leaves = _leaves(order, cum, fill_status == "2")
            else:
                # A market buy by CashOrderQty has no OrderQty: what is open for further
                # execution is the part of its CashOrderQty not yet spent (notional + fees),
                # so OrdStatus 1 always comes with LeavesQty > 0 and 2 with 0.
                spent += price * qty + _d(fill.get("fee"))
                fill_status = ORD_STATUS["filled"] if (last and status == "filled") else "1"
                budget = _d(order.get("quote_quantity"))
                leaves = Decimal(0) if fill_status == "2" else max(budget - spent, Decimal(0)).quantize(budget)
            fields = order_fields(order, account_id=account_id, exec_id=f"F{fill['fill_id']}", exec_type=EXEC_TRADE,
                                  ord_status=fill_status, cum=cum, leaves=leaves, avg=avg)
            fields += [(32, fill["quantity"]), (31, fill["price"]), (12, fill["fee"]), (13, "3"),
                       (479, fill.get("fee_asset")), (851, "1" if fill["liquidity"] == "maker" else "2")]
            out.append(("8", fields))
        cancel_cl = cancel_ids.get(order_id)
        if status == "cancelled":
            cancel_ids.pop(order_id, None)
            out.append(("8", order_fields(order, account_id=account_id, exec_id=f"C{order_id}", exec_type=EXEC_CANCELED,
                                          ord_status="4", cum=final_cum, leaves=Decimal(0), avg=final_avg,
                                          cl_ord_id=cancel_cl, orig_cl_ord_id=order.get("client_order_id") if cancel_cl else None,
                                          text=order.get("cancel_reason"))))
        elif status == "rejected":
            reason = order.get("reject_reason") or "rejected"
            fields = order_fields(order, account_id=account_id, exec_id=f"R{order_id}", exec_type=EXEC_REJECTED,
                                  ord_status="8", cum=final_cum, leaves=Decimal(0), avg=final_avg, text=reason)
            fields.append((103, ORD_REJ_REASON.get(reason, "99")))
            out.append(("8", fields))
        elif status == "filled" and cancel_cl is not None:
            cancel_ids.pop(order_id, None)
            out.append(("9", cancel_reject(account_id=account_id, cl_ord_id=cancel_cl, orig_cl_ord_id=order.get("client_order_id"),
                                           order=order, reason="0", code="order_closed",
                                           message=f"Order {order_id} filled before the cancel reached the engine.")))
    return out
