"""OpenAPI helpers shared by every API view: the problem+json body, paginated pages."""
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

from . import errors


class FieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField(allow_null=True)
    code = serializers.CharField()
    message = serializers.CharField()
    allowed = serializers.CharField(required=False)


class ProblemSerializer(serializers.Serializer):
    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.ChoiceField(choices=sorted(errors.CATALOGUE))
    request_id = serializers.CharField(allow_null=True)
    errors = FieldErrorSerializer(many=True, required=False)


def problem_responses(*statuses: int) -> dict:
    """``responses`` entries for the given error statuses, listing the codes each may carry.
    400 is always among them: every operation refuses a query parameter it does not take."""
    out = {}
    for status in sorted({400, *statuses}):
        codes = sorted(code for code, cls in errors.CATALOGUE.items() if cls.status == status and cls.rest)
        out[(status, "application/problem+json")] = OpenApiResponse(
            ProblemSerializer, description="Problem details; `code` one of: " + ", ".join(f"`{c}`" for c in codes)
        )
    return out


def page_of(item_serializer, name: str):
    return inline_serializer(
        name=name,
        fields={"results": item_serializer(many=True), "next_cursor": serializers.CharField(allow_null=True)},
    )


PAGE_PARAMETERS = [
    OpenApiParameter(
        "limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, description="Page size, 1-1000."
    ),
    OpenApiParameter(
        "cursor", {"type": "string", "pattern": "^[A-Za-z0-9_-]*$"},
        description="`next_cursor` from the previous page (empty or absent: the first page).",
    ),
]


# OpenAPI links: what a client (and the stateful fuzzer) may do with an order it just placed.
ORDER_LINKS = {
    "GetOrder": {"operationId": "orders_get", "parameters": {"order_id": "$response.body#/order_id"},
                 "description": "Read the order back."},
    "GetOrderByClientId": {"operationId": "orders_get_by_client_id",
                           "parameters": {"client_order_id": "$response.body#/client_order_id"},
                           "description": "Read it back by its client order id."},
    "CancelOrder": {"operationId": "orders_cancel", "parameters": {"order_id": "$response.body#/order_id"},
                    "description": "Cancel it."},
}


def add_order_links(result, generator, request, public):
    """drf-spectacular post-processing hook: links from a placed order to reading and
    cancelling it (create -> get -> cancel)."""
    for path, item in result.get("paths", {}).items():
        operation = item.get("post") if path.endswith("/orders") else None
        if not operation or operation.get("operationId") != "orders_submit":
            continue
        for status, response in operation.get("responses", {}).items():
            if status in ("200", "201", "202"):
                response["links"] = ORDER_LINKS
    return result
