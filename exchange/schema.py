"""OpenAPI helpers shared by every API view: the problem+json body, paginated pages, and the
post-processing hook that gives every operation the responses and headers it can always return."""
from django.conf import settings
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


# --- The contract hook: what every operation shares -------------------------------------------

LOCAL_ORIGIN = "http://127.0.0.1:8000"  # `make run`; BOURSE_PUBLIC_URL replaces it when set

_RATE_LIMIT_HEADERS = {
    "RateLimit-Policy": {
        "schema": {"type": "string"},
        "description": 'The budgets that apply to the caller, e.g. `"key";q=1200;w=60, "orders";q=50;w=10` '
        "(q requests per w seconds; `ip` for requests without credentials).",
    },
    "RateLimit": {
        "schema": {"type": "string"},
        "description": 'What is left of the budgets this request used, e.g. `"key";r=1187;t=41` '
        "(r remaining, t seconds until the window resets).",
    },
}
_RETRY_AFTER = {"schema": {"type": "integer", "minimum": 1}, "description": "Seconds to wait before retrying."}


def problem_schema() -> dict:
    """JSON Schema of the RFC 9457 problem body, its extension members generated from the
    catalogue (``BourseError.extension_fields``). Shared by the OpenAPI document (``Problem``)
    and the AsyncAPI document (the WebSocket error frame's ``error``)."""
    members: dict[str, tuple[dict, list[str]]] = {}
    for code, cls in sorted(errors.CATALOGUE.items()):
        for name, schema in cls.extension_fields.items():
            members.setdefault(name, (schema, []))[1].append(code)
    properties = {
        "type": {"type": "string", "format": "uri-reference",
                 "description": "The code's entry in the error catalogue (`/docs/errors#<code>`; absolute "
                                "when the server has a public URL configured)."},
        "title": {"type": "string", "description": "Short summary of the code, for people (may change)."},
        "status": {"type": "integer", "description": "The HTTP status (on WebSocket: the equivalent status)."},
        "detail": {"type": "string", "description": "This occurrence explained, for people (may change)."},
        "code": {"$ref": "#/components/schemas/CodeEnum"},
        "request_id": {"type": ["string", "null"], "description": "Also the `X-Request-ID` header; quote it to support."},
        "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"},
                   "description": "Field-level problems (`validation_error`, credential headers, channels)."},
    }
    for name, (schema, codes) in sorted(members.items()):
        sent_with = "Sent with " + ", ".join(f"`{c}`" for c in codes) + "."
        properties[name] = {**schema, "description": f"{schema.get('description', '')} {sent_with}".strip()}
    return {
        "type": "object",
        "description": "An RFC 9457 problem document (`application/problem+json`). Members beyond the "
        "standard five are extensions; new optional members may be added in minor versions.",
        "properties": properties,
        "required": ["type", "title", "status", "detail", "code", "request_id"],
    }


def _problem_response(status: int, *, private: bool) -> dict:
    codes = sorted(code for code, cls in errors.CATALOGUE.items() if cls.status == status and cls.rest)
    return {
        "description": "Problem details; `code` one of: " + ", ".join(f"`{c}`" for c in codes),
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def _common_responses(has_body: bool) -> dict[str, dict]:
    """Statuses any operation can answer whatever it does: the rate limiter and its store
    (429, 503), and for operations with a body the body limit and the parser (413, 415)."""
    out = {}
    if has_body:
        out["413"] = _problem_response(413, private=False)
        out["415"] = _problem_response(415, private=False)
    out["429"] = _problem_response(429, private=False)
    out["503"] = _problem_response(503, private=False)
    return out


def contract_hook(result, generator, request, public):
    """drf-spectacular post-processing: servers, `security: []` on public operations, the
    common responses with their headers, the Problem schema, deprecation headers."""
    origin = settings.BOURSE_PUBLIC_URL or LOCAL_ORIGIN
    result["servers"] = [{
        "url": origin,
        "description": "This Bourse" if settings.BOURSE_PUBLIC_URL else
        "A local Bourse started by `make run` (use your exchange's origin instead)",
    }]
    result["info"]["contact"] = {**result["info"].get("contact", {}), "url": f"{origin}/docs/"}
    schemas = result["components"]["schemas"]
    schemas["Problem"] = problem_schema()
    # CodeEnum comes from ProblemSerializer.code (clients name it: the TypeScript SDK's ErrorCode).
    schemas["CodeEnum"] = {"type": "string", "enum": sorted(errors.CATALOGUE),
                           "description": "Stable machine-readable error code: branch on this (docs/errors.md)."}
    for item in result["paths"].values():
        for method, operation in item.items():
            if method not in ("get", "put", "post", "patch", "delete"):
                continue
            signed = bool(operation.get("security"))
            if not signed:
                operation["security"] = []  # public: explicitly no credentials
            responses = operation["responses"]
            for status, response in _common_responses("requestBody" in operation).items():
                responses.setdefault(status, response)
            for status, response in responses.items():
                headers = response.setdefault("headers", {})
                # Every response the rate limiter saw carries its headers: all but 413 (refused
                # before the view), 503 (the limiter's store is down) and, on signed
                # operations, 401 (refused before the key was known).
                if status not in ("413", "503") and not (signed and status == "401"):
                    for name, header in _RATE_LIMIT_HEADERS.items():
                        headers.setdefault(name, header)
                if status in ("429", "503"):  # both say when to try again
                    headers.setdefault("Retry-After", _RETRY_AFTER)
                if operation.get("deprecated"):
                    if "x-deprecated-at" not in operation:  # the Deprecation header needs the date
                        raise ValueError(f"{operation['operationId']}: deprecated without x-deprecated-at")
                    _deprecation_headers(operation, headers)
                if not headers:
                    del response["headers"]
            operation["responses"] = dict(sorted(responses.items()))
    return result


def _deprecation_headers(operation: dict, headers: dict) -> None:
    headers.setdefault("Deprecation", {
        "schema": {"type": "string"},
        "description": "RFC 9745: when this operation was deprecated, as `@<epoch seconds>`.",
    })
    headers.setdefault("Link", {
        "schema": {"type": "string"},
        "description": 'The changelog entry announcing the deprecation (`rel="deprecation"`).',
    })
    if operation.get("x-sunset"):
        headers.setdefault("Sunset", {
            "schema": {"type": "string"},
            "description": "RFC 8594: the HTTP date after which this operation may stop working.",
        })
