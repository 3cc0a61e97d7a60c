"""Order entry over the WebSocket (docs/websocket.md, "Order entry"): the ops ``place_order``,
``amend_order``, ``cancel_order``, ``cancel_all`` and ``cancel_after``, and the connection's
``cancel_on_disconnect``.

Each op does what its REST twin does, through the same services, in the same order of
checks: the key must still stand and carry the ``trade`` scope (``permission_denied``
otherwise, audited like REST's), the op counts against the key's request budget (``key``),
an order placement against the account's ``orders`` budget, the body is checked by the
serializer ``POST /orders`` uses (so the error codes are REST's), and the service waits up
to ``BOURSE_ENGINE_WAIT_S`` for the engine's verdict.

A connection's order ops run one after another, in the order they arrived, on a task of
their own: pings and subscriptions are answered meanwhile, and an op waiting for the
engine holds one of the process's ``BOURSE_WS_ORDER_THREADS`` order threads, never the
event loop nor the shared database thread.
"""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from channels.db import database_sync_to_async
from django.conf import settings

from apikeys import keycache
from apikeys.verifier import audit_refusal, standing_refusal
from exchange import errors, ratelimit
from exchange.problems import to_bourse_error
from trading import services
from trading.api.serializers import OrderAmendSerializer, order_submit_body
from trading.representations import cancel_after_to_wire, order_to_wire

log = logging.getLogger("bourse.ws")

ORDER_OPS = ("place_order", "amend_order", "cancel_order", "cancel_all", "cancel_after")
_executor: ThreadPoolExecutor | None = None


def _run(fn, *args):
    """``fn(*args)`` on an order thread (or the shared database thread when there are none)."""
    global _executor
    threads = settings.BOURSE_WS_ORDER_THREADS
    if threads <= 0:
        return database_sync_to_async(fn)(*args)
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ws-orders")
    return database_sync_to_async(fn, thread_sensitive=False, executor=_executor)(*args)


def _unknown_fields(message: dict, allowed: tuple[str, ...]) -> None:
    unknown = sorted(name for name in message if name not in ("op", "id", *allowed))
    if unknown:
        raise errors.ValidationError(
            f"Unknown field(s): {', '.join(n[:64] for n in unknown[:10])}.",
            errors=[{"field": n[:64], "code": "unknown_field", "message": "unknown field"} for n in unknown[:10]],
        )


def _checked(fn):
    """Run a sync op body; a DRF validation error becomes the REST problem's BourseError."""

    def wrapper(*args):
        try:
            return fn(*args)
        except errors.BourseError:
            raise
        except Exception as exc:
            error = to_bourse_error(exc)
            if error is None:
                raise
            raise error from exc

    return wrapper


def trading_key(key_id: str, source_ip: str, *, order: bool = False):
    """The connection's key as it stands now, allowed to trade; counted against its budget
    and, for an ``order`` (a placement or an amend), its account's ``orders`` budget after it
    (one round trip)."""
    key = keycache.key_get(key_id).key
    if key is None:
        raise errors.KeyRevoked(f"API key {key_id} no longer exists.")
    refusal = standing_refusal(key, source_ip, "trade")
    if refusal is not None:
        audit_refusal(refusal, channel="ws", source_ip=source_ip, key_id=key_id)
        raise refusal
    budgets: list[tuple[str, str | int]] = [(ratelimit.KEY, key_id)]
    if order:
        budgets.append((ratelimit.ORDERS, key.account_id))
    ratelimit.consume_all(budgets)
    return key


@_checked
def place_order(key_id: str, source_ip: str, message: dict) -> dict:
    key = trading_key(key_id, source_ip, order=True)
    body = {name: value for name, value in message.items() if name not in ("op", "id")}
    result = services.order_submit(account=key.account, wait=settings.BOURSE_ENGINE_WAIT_S, **order_submit_body(body))
    return {"type": "order", "order": order_to_wire(result.order)}


def _order_id(message: dict) -> str:
    order_id = message.get("order_id")
    if order_id is None:
        raise errors.ValidationError.field("order_id", "required", "order_id is required.")
    if not isinstance(order_id, str):
        raise errors.ValidationError.field("order_id", "invalid", "order_id must be a string (as orders carry it).")
    return order_id


@_checked
def amend_order(key_id: str, source_ip: str, message: dict) -> dict:
    """``PATCH /orders/{order_id}``'s twin (it counts against the ``orders`` budget as it does)."""
    key = trading_key(key_id, source_ip, order=True)
    order_id = _order_id(message)
    serializer = OrderAmendSerializer(data={k: v for k, v in message.items() if k not in ("op", "id", "order_id")})
    serializer.is_valid(raise_exception=True)
    order, _ = services.order_amend(key.account, order_id, wait=settings.BOURSE_ENGINE_WAIT_S, **serializer.validated_data)
    return {"type": "order", "order": order_to_wire(order)}


@_checked
def cancel_order(key_id: str, source_ip: str, message: dict) -> dict:
    """``DELETE /orders/{order_id}`` or ``DELETE /orders/by-client-id/{client_order_id}``."""
    key = trading_key(key_id, source_ip)
    _unknown_fields(message, ("order_id", "client_order_id"))
    if ("order_id" in message) == ("client_order_id" in message):
        raise errors.ValidationError.field("order_id", "required", "Name the order by order_id or client_order_id (one of them).")
    wait = settings.BOURSE_ENGINE_WAIT_S
    if "client_order_id" in message:
        order, _ = services.order_cancel_by_client_id(account=key.account, client_order_id=message["client_order_id"],
                                                      wait=wait)
    else:
        order, _ = services.order_cancel(account=key.account, order_id=_order_id(message), wait=wait)
    order.refresh_from_db()
    return {"type": "order", "order": order_to_wire(order)}


@_checked
def cancel_all(key_id: str, source_ip: str, message: dict) -> dict:
    key = trading_key(key_id, source_ip)
    _unknown_fields(message, ("market",))
    market = message.get("market")
    if market is not None and not isinstance(market, str):
        raise errors.ValidationError.field("market", "invalid", "market must be a market symbol.")
    cancelled = services.order_cancel_all(account=key.account, market=market or None, wait=settings.BOURSE_ENGINE_WAIT_S)
    return {"type": "cancel_all", "cancelled": [str(pk) for pk in cancelled]}


@_checked
def cancel_after(key_id: str, source_ip: str, message: dict) -> dict:
    key = trading_key(key_id, source_ip)
    _unknown_fields(message, ("timeout_ms",))
    if "timeout_ms" not in message:
        raise errors.ValidationError.field("timeout_ms", "required", "timeout_ms is required (0 disarms).")
    return {"type": "cancel_after", **cancel_after_to_wire(services.deadman_arm(key=key, timeout_ms=message["timeout_ms"]))}


def cancel_on_disconnect(key_id: str, account) -> list[int]:
    """The connection asked for it at ``auth`` and has closed: cancel the account's orders."""
    cancelled = services.order_cancel_all(account=account, reason="disconnect")
    log.info("websocket cancel on disconnect: %d orders", len(cancelled), extra={"key_id": key_id})
    return cancelled


def cancel_on_disconnect_allowed(key, source_ip: str) -> None:
    """``cancel_on_disconnect`` cancels orders: the key needs the ``trade`` scope for it."""
    refusal = standing_refusal(key, source_ip, "trade")
    if refusal is not None:
        audit_refusal(refusal, channel="ws", source_ip=source_ip, key_id=key.key_id)
        raise refusal


SYNC_OPS = {"place_order": place_order, "amend_order": amend_order, "cancel_order": cancel_order, "cancel_all": cancel_all,
            "cancel_after": cancel_after}


class OrderEntryMixin:
    """The consumer's side of order entry: a queue of order ops per connection, worked in
    arrival order by one task, and cancel-on-disconnect. Mixed into the consumer, which
    provides ``key_id``, ``account_id``, ``ip``, ``send_text`` and ``op_error``."""

    key_id: str | None
    account_id: int | None
    ip: str
    _order_queue: asyncio.Queue | None = None
    _order_worker: asyncio.Task | None = None
    cancel_on_disconnect: bool = False
    _disconnect_account: Any = None
    _order_entry_closed: bool = False

    if TYPE_CHECKING:  # provided by the consumer
        async def send_text(self, text: str) -> None: ...

        async def op_error(self, exc: Exception, message_id: Any = None, op: Any = None) -> None: ...

    async def order_op(self, message: dict, message_id: Any) -> None:
        """Queue an order op (answered by the worker, in order)."""
        if self.key_id is None:
            raise errors.NotAuthenticated(f"Authenticate (op auth, a key with scope trade) before {message['op']}.")
        if self._order_entry_closed:
            return
        if self._order_queue is None:
            self._order_queue = asyncio.Queue()
            self._order_worker = asyncio.get_running_loop().create_task(self._work_orders())
        if self._order_queue.qsize() >= settings.BOURSE_WS_MAX_QUEUED_ORDER_OPS:
            raise errors.RateLimited(
                f"{settings.BOURSE_WS_MAX_QUEUED_ORDER_OPS} order operations are already waiting on this connection.",
                retry_after=1, policy="ws_messages")
        self._order_queue.put_nowait((message, message_id))

    async def _work_orders(self) -> None:
        from .relay import dumps

        assert self._order_queue is not None  # created with the task
        while not self._order_entry_closed:
            message, message_id = await self._order_queue.get()
            if message is None or self._order_entry_closed:
                return  # the connection has gone: what is still queued is not done
            op = SYNC_OPS.get(message["op"])
            try:
                if op is None:
                    raise errors.UnknownOp(f"Unknown op {message['op']!r}.")
                assert self.key_id is not None  # order_op refuses before auth
                reply = await _run(op, self.key_id, self.ip, message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - answered as an error frame, the connection goes on
                await self.op_error(exc, message_id, message.get("op"))
                continue
            await self.send_text(dumps({"type": reply.pop("type"), "id": message_id, **reply}))

    async def order_entry_auth(self, message: dict) -> bool:
        """``auth``'s ``cancel_on_disconnect`` member: validated before the key is checked."""
        value = message.get("cancel_on_disconnect", False)
        if not isinstance(value, bool):
            raise errors.ValidationError.field("cancel_on_disconnect", "invalid_type", "cancel_on_disconnect must be true or false.")
        return value

    async def order_entry_authenticated(self, key, wanted: bool) -> None:
        """After the key verified (``key``: its record, with account and owner), before the
        connection counts as authenticated."""
        if wanted:
            await database_sync_to_async(cancel_on_disconnect_allowed)(key, self.ip)
            self.cancel_on_disconnect = True
            self._disconnect_account = key.account

    async def order_entry_close(self) -> None:
        """The connection has gone: stop its order ops and, if asked at ``auth``, cancel the
        account's orders (``cancel_reason`` ``disconnect``). Once."""
        if self._order_entry_closed:
            return
        self._order_entry_closed = True
        if self._order_worker is not None and self._order_queue is not None:
            # Let the op under way finish (its write may be committing) so that the cancels
            # below see it; what is still queued is dropped.
            self._order_queue.put_nowait((None, None))
            try:
                await asyncio.wait_for(asyncio.shield(self._order_worker), settings.BOURSE_ENGINE_WAIT_S + 10)
            except (TimeoutError, asyncio.CancelledError):
                self._order_worker.cancel()
            except Exception:  # noqa: BLE001 - the worker answers its own errors; nothing to add
                log.exception("websocket order worker failed")
        if self.cancel_on_disconnect and self.key_id is not None and self._disconnect_account is not None:
            try:
                await _run(cancel_on_disconnect, self.key_id, self._disconnect_account)
            except Exception:  # noqa: BLE001 - logged; the connection is gone either way
                log.exception("websocket cancel on disconnect failed", extra={"key_id": self.key_id})
