"""No 500 from bad input: each malformed cursor, non-ASCII number, deeply nested body,
out-of-range id and overflowing value gets a 400 (or 404 for an id naming nothing) with a
stable code; patterns anchor at the true end; unknown query parameters are refused."""
import base64
import json

import pytest
import yaml

from apikeys import verifier
from exchange import errors
from exchange.urls import api_v1
from tests.factories import AccountFactory, ApiKeyFactory
from tests.signed import SignedClient, fresh_nonce
from tests.support import fund
from trading.models import Order

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_wait(settings):
    settings.BOURSE_ENGINE_WAIT_S = 0


@pytest.fixture
def alice(market):
    account = AccountFactory(name="alice")
    fund(account, USD="10000", BTC="10")
    return SignedClient(ApiKeyFactory(account=account))


def _cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def _cursor_raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


BAD_CURSORS = [
    "!!!",  # not base64
    "a",  # impossible padding
    _cursor_raw("[" * 5000 + "]" * 5000),  # nested past the recursion limit
    _cursor("abc"),  # a string where the list is keyed by id
    _cursor(10**30),  # beyond any id
    _cursor(True),
    _cursor(1.5),
    _cursor_raw("1e400"),
    _cursor({"id": 1}),
]
PUBLIC_LISTS = ["/api/v1/markets/BTC-USD/trades"]
PRIVATE_LISTS = ["/api/v1/orders", "/api/v1/fills", "/api/v1/ledger"]


def _problem(response, status=400, code="validation_error") -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code
    return body


@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_malformed_cursors_are_400(client, alice, cursor):
    for path in PUBLIC_LISTS:
        _problem(client.get(path, {"cursor": cursor}))
    for path in PRIVATE_LISTS:
        _problem(alice.get(path, query={"cursor": cursor}))
    # a code-keyed list refuses an integer cursor and takes its own kind
    _problem(client.get("/api/v1/markets", {"cursor": _cursor(5)}))
    _problem(alice.get("/api/v1/balances", query={"cursor": _cursor(5)}))
    assert client.get("/api/v1/markets", {"cursor": _cursor("A")}).status_code == 200


@pytest.mark.parametrize("value", ["١٠", "²", "10\n", " 10", "+10", "1_0", "99999999999999999999", ""])
def test_numbers_in_the_query_are_ascii_digits_only(client, market, value):
    body = _problem(client.get("/api/v1/markets/BTC-USD/book", {"depth": value}))
    assert body["errors"][0]["field"] == "depth"
    body = _problem(client.get("/api/v1/markets/BTC-USD/trades", {"limit": value}))
    assert body["errors"][0]["field"] == "limit"


def test_non_ascii_digits_in_money_are_refused(alice):
    order = {"market": "BTC-USD", "side": "buy", "type": "limit", "price": "١٠٠", "quantity": "1"}
    body = _problem(alice.post("/api/v1/orders", json=order))
    assert body["errors"][0]["field"] == "price"
    assert Order.objects.count() == 0


def test_the_shared_money_parser_refuses_what_decimal_would_take():
    from accounts.ledger import to_amount

    for text in ["١٢", "1e5", "NaN", "Infinity", " 5", "5\n", "0x10", "1_000"]:
        with pytest.raises(errors.ValidationError):
            to_amount(text)
    assert str(to_amount("12.50")) == "12.50"


def test_deeply_nested_json_bodies_are_400(alice):
    nested = b"[" * 30000 + b"]" * 30000  # under the body limit, past the parser's recursion
    body = _problem(alice.post("/api/v1/orders", body=nested))
    assert "nested" in body["detail"]
    assert Order.objects.count() == 0


@pytest.mark.parametrize("order_id", ["99999999999999999999999", "9223372036854775808", "١٢", "-1", "0", "1.0"])
def test_out_of_range_or_malformed_ids_are_not_found(alice, order_id):
    _problem(alice.get(f"/api/v1/orders/{order_id}"), 404, "not_found")
    _problem(alice.request("DELETE", f"/api/v1/orders/{order_id}"), 404, "not_found")
    body = _problem(alice.get("/api/v1/fills", query={"order_id": order_id}))
    assert body["errors"][0]["field"] == "order_id"


@pytest.mark.parametrize(
    "change",
    [
        {"price": "1" + "0" * 37},
        {"quantity": "9" * 38},
        {"price": "0." + "0" * 17 + "1"},  # 18 places: more than the tick allows, not a crash
        {"type": "market", "price": None, "quote_quantity": "9" * 20 + "." + "9" * 18},
    ],
)
def test_overflowing_values_are_400(alice, change):
    order = {"market": "BTC-USD", "side": "buy", "type": "limit", "price": "100.00", "quantity": "1", **change}
    order = {k: v for k, v in order.items() if v is not None}
    _problem(alice.post("/api/v1/orders", json=order))
    assert Order.objects.count() == 0


def test_a_trailing_newline_is_not_part_of_a_client_order_id(alice):
    order = {"market": "BTC-USD", "side": "buy", "type": "limit", "price": "100.00", "quantity": "1",
             "client_order_id": "abc\n"}
    body = _problem(alice.post("/api/v1/orders", json=order))
    assert body["errors"][0]["field"] == "client_order_id"
    assert Order.objects.count() == 0


def test_nonce_timestamp_and_key_patterns_anchor_at_the_true_end(alice):
    key = alice.key
    good = {"key_id": key.key_id, "timestamp": "1", "nonce": fresh_nonce(), "signature": "x", "window": None,
            "method": "GET", "path": "/ws/v1", "query": "", "body_sha256": "", "source_ip": "127.0.0.1"}
    for field, value in [("nonce", fresh_nonce() + "\n"), ("timestamp", "1700000000000\n"), ("window", "5000\n")]:
        with pytest.raises(errors.InvalidCredentials) as refused:
            verifier.verify_request(**{**good, field: value})
        assert refused.value.errors[0]["field"] == verifier.HEADERS[field]
        assert refused.value.errors[0]["code"] == "invalid"


def _operations():
    """(path, method, query parameter names) of every operation in the published document."""
    with open("docs/openapi.yaml") as spec:
        document = yaml.safe_load(spec)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "delete", "put", "patch"):
                names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
                yield path, method, names


def test_every_view_takes_exactly_the_query_parameters_it_documents():
    from django.urls import URLPattern

    views = {}
    for pattern in api_v1:
        if isinstance(pattern, URLPattern) and hasattr(pattern.callback, "view_class"):
            route = "/api/v1/" + str(pattern.pattern).replace("<str:", "{").replace(">", "}")
            views[route] = pattern.callback.view_class
    checked = 0
    for path, method, names in _operations():
        if path not in views or not hasattr(views[path], "query_parameters"):
            continue
        assert set(views[path].query_parameters.get(method, ())) == names, (path, method)
        checked += 1
    assert checked >= 15


@pytest.mark.parametrize(
    "method, path",
    [("get", "/api/v1/markets"), ("get", "/api/v1/markets/BTC-USD"), ("get", "/api/v1/markets/BTC-USD/book"),
     ("get", "/api/v1/markets/BTC-USD/trades"), ("get", "/api/v1/markets/BTC-USD/ticker"), ("get", "/api/v1/time")],
)
def test_unknown_query_parameters_are_refused_on_public_operations(client, market, method, path):
    body = _problem(client.get(path, {"markt": "BTC-USD"}))
    assert body["errors"] == [{"field": "markt", "code": "unknown_parameter",
                               "message": "markt is not a parameter of this operation"}]


@pytest.mark.parametrize(
    "method, path",
    [("GET", "/api/v1/orders"), ("DELETE", "/api/v1/orders"), ("POST", "/api/v1/orders"), ("GET", "/api/v1/fills"),
     ("GET", "/api/v1/ledger"), ("GET", "/api/v1/balances"), ("GET", "/api/v1/account"),
     ("GET", "/api/v1/positions"), ("GET", "/api/v1/orders/1"), ("DELETE", "/api/v1/orders/1"),
     ("GET", "/api/v1/orders/by-client-id/x")],
)
def test_unknown_query_parameters_are_refused_on_private_operations(alice, method, path):
    order = {"market": "BTC-USD", "side": "buy", "type": "limit", "price": "100.00", "quantity": "1"}
    response = alice.request(method, path, query={"markt": "BTC-USD"}, json=order if method == "POST" else None)
    body = _problem(response)
    assert body["errors"][0]["code"] == "unknown_parameter"
    assert Order.objects.count() == 0
