"""REST order entry beyond one order at a time: ``POST /orders/batch`` and the dead-man
switch ``POST /cancel-after``. Thin like every view: the order services do the work, so a
batch item is exactly the ``POST /orders`` it stands for (same checks, idempotency, budget
and answer)."""
from __future__ import annotations

import logging
import time

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from apikeys.authentication import PrivateApi
from apikeys.models import Scope
from apikeys.schema import AUTH_ERROR_EXAMPLES, RATE_LIMIT_HEADERS
from exchange import errors, ratelimit
from exchange.context import request_id_var
from exchange.problems import to_bourse_error
from exchange.schema import ProblemSerializer, problem_responses

from .. import services
from ..models import Order
from ..representations import cancel_after_to_wire, order_to_wire
from .serializers import OrderSerializer, OrderSubmitSerializer, order_submit_body
from .views import ORDER_EXAMPLE

log = logging.getLogger("bourse.api")

BATCH_MAX = 20
PRIVATE_ERRORS = (401, 403, 429)


def order_batch_envelope(data: object) -> list:
    """The ``orders`` list of a batch body, or a ``validation_error`` naming what is wrong
    with the envelope (``required``, ``not_a_list``, ``empty``, ``too_many``, ``unknown_field``)."""
    if not isinstance(data, dict) or "orders" not in data:
        raise errors.ValidationError.field("orders", "required", 'The body is {"orders": [order, ...]}.')
    unknown = sorted(name for name in data if name != "orders")
    if unknown:
        raise errors.ValidationError(
            f"Unknown field(s): {', '.join(n[:64] for n in unknown[:10])}.",
            errors=[{"field": n[:64], "code": "unknown_field", "message": "unknown field"} for n in unknown[:10]],
        )
    orders = data["orders"]
    if not isinstance(orders, list):
        raise errors.ValidationError.field("orders", "not_a_list", "orders must be a list of order bodies.")
    if not orders:
        raise errors.ValidationError.field("orders", "empty", "orders must hold at least one order.")
    if len(orders) > BATCH_MAX:
        raise errors.ValidationError.field(
            "orders", "too_many", f"A batch holds at most {BATCH_MAX} orders ({len(orders)} sent).", allowed=str(BATCH_MAX)
        )
    return orders


class _Refused(Exception):
    def __init__(self, error: errors.BourseError):
        self.error = error


def _problem(exc: Exception) -> errors.BourseError:
    error = to_bourse_error(exc)
    if error is None:
        log.exception("batch item failed", exc_info=exc)
        error = errors.ServerError("An unexpected error occurred.")
    return error


class OrderBatchApi(PrivateApi):
    """Up to 20 orders in one request; each item stands alone."""

    required_scope = Scope.TRADE
    write_scope = Scope.TRADE

    @extend_schema(
        operation_id="orders_submit_batch",
        summary="Submit up to 20 orders",
        description=(
            "Submits each order of `orders` as `POST /orders` would (scope `trade`), in request order, and answers "
            f"200 with one result per order, in the same order. Items are independent: one refused order does not "
            "undo or stop the others. A result is `{\"status\": 201|200|202, \"order\": {...}}` (the status "
            "`POST /orders` would have answered) or `{\"status\": 4xx|5xx, \"error\": {problem}}` (the problem "
            f"`POST /orders` would have answered). Each item counts against the `orders` budget. At most {BATCH_MAX} "
            "orders; a body that is not `{\"orders\": [...]}` with 1-20 items is a 400 `validation_error` whose "
            "`errors[].code` says why (`required`, `not_a_list`, `empty`, `too_many`, `unknown_field`), and then "
            "nothing is submitted. The engine's verdicts are awaited together, up to 2 s in all."
        ),
        tags=["orders"],
        request=inline_serializer("OrderBatchRequest", {
            "orders": serializers.ListField(child=OrderSubmitSerializer(), min_length=1, max_length=BATCH_MAX)}),
        parameters=RATE_LIMIT_HEADERS,
        responses={
            200: OpenApiResponse(inline_serializer("OrderBatchResults", {"results": inline_serializer(
                "OrderBatchResult", {
                    "status": serializers.IntegerField(help_text="The HTTP status `POST /orders` would have answered."),
                    "order": OrderSerializer(required=False, help_text="The order (2xx results)."),
                    "error": ProblemSerializer(required=False, help_text="The problem (refused items)."),
                }, many=True)}), description="One result per order, in request order."),
            **problem_responses(*PRIVATE_ERRORS, 413),
        },
        examples=[*AUTH_ERROR_EXAMPLES,
                  OpenApiExample("Two orders", request_only=True, value={"orders": [
                      {"market": "BTC-USD", "side": "buy", "type": "limit", "price": "100.00", "quantity": "0.5000",
                       "client_order_id": "grid-1"},
                      {"market": "BTC-USD", "side": "buy", "type": "limit", "price": "99.995", "quantity": "0.5000",
                       "client_order_id": "grid-2"}]}),
                  OpenApiExample("One accepted, one refused", response_only=True, status_codes=["200"], value={"results": [
                      {"status": 201, "order": {**ORDER_EXAMPLE, "client_order_id": "grid-1", "status": "open",
                                                "filled_quantity": "0.00000000", "remaining_quantity": "0.50000000",
                                                "average_price": None}},
                      {"status": 400, "error": {
                          "type": "/docs/errors#validation_error", "title": "Validation error", "status": 400,
                          "detail": "price must be a multiple of the tick size 0.01", "code": "validation_error",
                          "request_id": "b7c1", "errors": [{"field": "price", "code": "tick_size",
                                                            "message": "price must be a multiple of 0.01",
                                                            "allowed": "0.01"}]}}]})],
    )
    def post(self, request):
        bodies = order_batch_envelope(request.data)
        account = request.auth.account
        request_id = request_id_var.get()
        results: list[dict] = []
        placed: list[tuple[int, Order, bool]] = []  # (result index, order, created)
        for body in bodies:
            try:
                usage = ratelimit.hit(ratelimit.ORDERS, account.pk)
                ratelimit.record(request, usage)
                if usage.exceeded:
                    raise _Refused(ratelimit.refusal(usage))
                result = services.order_submit(account=account, **order_submit_body(body))
            except _Refused as refused:
                results.append({"status": refused.error.status, "error": refused.error.as_problem(request_id)})
                continue
            except Exception as exc:  # noqa: BLE001 - each item answers for itself, as POST /orders would
                error = _problem(exc)
                results.append({"status": error.status, "error": error.as_problem(request_id)})
                continue
            placed.append((len(results), result.order, result.created))
            results.append({})
        deadline = time.monotonic() + settings.BOURSE_ENGINE_WAIT_S
        for index, order, created in placed:
            if created:
                try:
                    order = services.order_wait(order, max(0.0, deadline - time.monotonic()))
                except Exception:  # noqa: BLE001 - the order stands: answered as not yet answered
                    log.warning("waiting for the engine failed after commit", exc_info=True)
            status = 200 if not created else 202 if order.status == "pending" else 201
            results[index] = {"status": status, "order": order_to_wire(order)}
        return Response({"results": results})


class CancelAfterApi(PrivateApi):
    """The key's dead-man switch."""

    required_scope = Scope.TRADE
    write_scope = Scope.TRADE

    @extend_schema(
        operation_id="cancel_after",
        summary="Arm the dead-man switch",
        description=(
            "Arms this API key's dead-man switch (scope `trade`): unless it is called again within `timeout_ms`, every "
            "live order of the key's account placed up to the trigger time is cancelled (`cancel_reason` `dead_man`). "
            "Call it periodically (a heartbeat) to push the trigger time on; `timeout_ms` 0 disarms. `timeout_ms` is "
            "0 or 1000-600000 (else 400 `validation_error`, field code `out_of_range` or `invalid_type`). The switch "
            "is kept by the server: a restart of the API or the engine does not lose it, and a trigger time that "
            "passed while the engine was down fires when it starts. It fires within 0.25 s of `trigger_time`. One "
            "switch per key (the WebSocket op `cancel_after` arms the same one)."
        ),
        tags=["orders"],
        request=inline_serializer("CancelAfterRequest", {
            "timeout_ms": serializers.IntegerField(min_value=0, max_value=600000,
                                                   help_text="0 (disarm) or 1000-600000 milliseconds.")}),
        parameters=RATE_LIMIT_HEADERS,
        responses={
            200: OpenApiResponse(inline_serializer("CancelAfterState", {
                "current_time": serializers.CharField(help_text="The server's time (RFC 3339)."),
                "trigger_time": serializers.CharField(allow_null=True,
                                                      help_text="When the switch fires unless re-armed; null: disarmed."),
            }), description="The switch as it now stands."),
            **problem_responses(*PRIVATE_ERRORS, 413),
        },
        examples=[*AUTH_ERROR_EXAMPLES,
                  OpenApiExample("Arm for 10 s", request_only=True, value={"timeout_ms": 10000}),
                  OpenApiExample("Armed", response_only=True, status_codes=["200"], value={
                      "current_time": "2026-11-23T18:00:00.000000Z", "trigger_time": "2026-11-23T18:00:10.000000Z"})],
    )
    def post(self, request):
        data = request.data
        if not isinstance(data, dict) or "timeout_ms" not in data:
            raise errors.ValidationError.field("timeout_ms", "required", 'The body is {"timeout_ms": N}.')
        unknown = sorted(name for name in data if name != "timeout_ms")
        if unknown:
            raise errors.ValidationError(
                f"Unknown field(s): {', '.join(n[:64] for n in unknown[:10])}.",
                errors=[{"field": n[:64], "code": "unknown_field", "message": "unknown field"} for n in unknown[:10]],
            )
        state = services.deadman_arm(key=request.auth, timeout_ms=data["timeout_ms"])
        return Response(cancel_after_to_wire(state))
