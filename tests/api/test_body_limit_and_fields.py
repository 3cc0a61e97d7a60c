"""413 for oversize bodies; decimal strings only in money fields."""
import json
from decimal import Decimal

import pytest
from django.test import Client
from rest_framework import serializers

from exchange.fields import DecimalStringField

pytestmark = pytest.mark.django_db


def test_declared_oversize_body_is_413_before_reading(settings):
    settings.BOURSE_MAX_BODY_BYTES = 100
    response = Client().post("/api/v1/account", data=b"x" * 101, content_type="application/json")
    assert response.status_code == 413
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "payload_too_large"


def asgi_request(body: bytes):
    """An ASGI request without Content-Length (a chunked upload): Django's ASGI handler
    buffers such a body whole, so only the middleware's bounded read stands in the way."""
    from io import BytesIO

    from django.core.handlers.asgi import ASGIRequest

    scope = {"type": "http", "method": "POST", "path": "/api/v1/account", "query_string": b"",
             "headers": [(b"content-type", b"application/json")]}
    return ASGIRequest(scope, BytesIO(body))


@pytest.mark.parametrize("size, refused", [(100, False), (101, True), (10_000, True)])
def test_undeclared_body_size_is_checked_by_reading(settings, size, refused):
    from exchange.bodylimit import BodyLimitMiddleware

    settings.BOURSE_MAX_BODY_BYTES = 100
    seen = []
    middleware = BodyLimitMiddleware(lambda request: seen.append(request.body) or "view reached")
    response = middleware(asgi_request(b"x" * size))
    if refused:
        assert response.status_code == 413 and b"payload_too_large" in response.content and not seen
    else:
        assert response == "view reached" and seen == [b"x" * size]


def test_body_at_the_limit_passes_to_the_view(settings):
    settings.BOURSE_MAX_BODY_BYTES = 100
    response = Client().post("/api/v1/account", data=b"{" + b" " * 98 + b"}", content_type="application/json")
    assert response.status_code == 401  # reached authentication: the size was fine


def test_non_api_paths_are_not_limited_here(settings):
    settings.BOURSE_MAX_BODY_BYTES = 10
    assert Client().post("/healthz", data=b"x" * 100, content_type="text/plain").status_code != 413


class Order(serializers.Serializer):
    price = DecimalStringField()
    quantity = DecimalStringField(max_places=8)
    offset = DecimalStringField(positive=False, required=False)


@pytest.mark.parametrize(
    "price, code",
    [
        (1.5, "not_a_string"),
        (1, "not_a_string"),
        (True, "not_a_string"),
        (None, "null"),
        ("1e3", "invalid"),
        ("NaN", "invalid"),
        ("Infinity", "invalid"),
        (" 1.5", "invalid"),
        ("1,000.00", "invalid"),
        ("0", "not_positive"),
        ("-1.00", "not_positive"),
        ("", "invalid"),
    ],
)
def test_money_field_refuses_numbers_and_odd_strings(price, code):
    form = Order(data={"price": price, "quantity": "1"})
    assert not form.is_valid()
    assert form.errors["price"][0].code == code


def test_money_field_accepts_decimal_strings_exactly():
    form = Order(data={"price": "0.0100", "quantity": "0.12345678", "offset": "-2.5"})
    assert form.is_valid(), form.errors
    assert form.validated_data == {"price": Decimal("0.0100"), "quantity": Decimal("0.12345678"), "offset": Decimal("-2.5")}
    assert not Order(data={"price": "1", "quantity": "0.123456789"}).is_valid()


def test_json_number_in_a_money_field_is_a_validation_error_on_the_wire():
    from exchange.problems import to_bourse_error

    form = Order(data={"price": 100.25, "quantity": "1"})
    form.is_valid()
    error = to_bourse_error(serializers.ValidationError(form.errors))
    body = error.as_problem()
    assert body["code"] == "validation_error" and body["status"] == 400
    assert body["errors"] == [{"field": "price", "code": "not_a_string",
                               "message": 'must be a decimal string such as "0.0100", not a JSON number.'}]


class _Sink:
    def __init__(self):
        self.messages = []

    async def __call__(self, message):
        self.messages.append(message)


def test_asgi_refuses_a_declared_oversize_body_without_reading_it(settings):
    from asgiref.sync import async_to_sync

    from exchange.bodylimit import BodyLimitASGI

    settings.BOURSE_MAX_BODY_BYTES = 100
    reached = []

    async def app(scope, receive, send):  # pragma: no cover - must not be called
        reached.append(scope)

    async def receive():  # pragma: no cover - must not be called
        raise AssertionError("the body was read")

    sink = _Sink()
    scope = {"type": "http", "path": "/api/v1/orders",
             "headers": [(b"content-length", b"5000000"), (b"x-request-id", b"client-7")]}
    async_to_sync(BodyLimitASGI(app))(scope, receive, sink)
    assert not reached and sink.messages[0]["status"] == 413
    assert (b"x-request-id", b"client-7") in sink.messages[0]["headers"]
    body = json.loads(sink.messages[1]["body"])
    assert body["code"] == "payload_too_large" and body["request_id"] == "client-7"


def test_asgi_stops_reading_a_chunked_body_one_byte_past_the_limit(settings):
    from asgiref.sync import async_to_sync

    from exchange.bodylimit import BodyLimitASGI

    settings.BOURSE_MAX_BODY_BYTES = 100
    chunks = [{"type": "http.request", "body": b"x" * 60, "more_body": True} for _ in range(1000)]
    pulled = []

    async def receive():
        pulled.append(1)
        return chunks[len(pulled) - 1]

    seen = bytearray()

    async def app(scope, receive, send):
        while True:
            message = await receive()
            seen.extend(message.get("body", b""))
            if not message.get("more_body"):
                return

    async_to_sync(BodyLimitASGI(app))({"type": "http", "path": "/api/v1/orders", "headers": []}, receive, _Sink())
    assert len(seen) == 101 and len(pulled) == 2  # the 998 other chunks were never pulled
