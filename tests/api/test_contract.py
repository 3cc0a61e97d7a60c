"""docs/openapi.yaml declares what the server really does: every status each operation can
answer, with its headers, and a Problem schema that covers every member the server sends."""
import time

import jsonschema
import pytest
import yaml
from django.test import Client

from exchange import docs
from tests.factories import AccountFactory, ApiKeyFactory
from tests.signed import SignedClient
from tests.support import fund

pytestmark = pytest.mark.django_db

SPEC = yaml.safe_load(docs.OPENAPI_PATH.read_text())
OPERATIONS = [
    (method, path, operation)
    for path, item in SPEC["paths"].items()
    for method, operation in item.items()
]
IDS = [operation["operationId"] for _, _, operation in OPERATIONS]


@pytest.mark.parametrize("method, path, operation", OPERATIONS, ids=IDS)
def test_every_operation_declares_the_statuses_it_can_always_answer(method, path, operation):
    responses = operation["responses"]
    assert {"429", "503"} <= set(responses)
    assert {"Retry-After", "RateLimit", "RateLimit-Policy"} <= set(responses["429"]["headers"])
    assert "Retry-After" in responses["503"]["headers"]
    if "requestBody" in operation:
        assert {"413", "415"} <= set(responses)
    if operation["security"]:
        assert {"401", "403"} <= set(responses)
        assert "RateLimit" in responses["200"]["headers"]
    else:  # public: explicitly no credentials, and counted per address
        assert operation["security"] == []
        assert "RateLimit" in responses["200"]["headers"]
    for status, response in responses.items():
        if status >= "400":
            assert response["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_document_names_servers_contact_license_and_describes_its_tags():
    assert SPEC["servers"] and SPEC["servers"][0]["url"].startswith("http")
    assert SPEC["info"]["license"]["identifier"] and SPEC["info"]["contact"]["url"]
    used = {tag for _, _, operation in OPERATIONS for tag in operation["tags"]}
    assert used == {tag["name"] for tag in SPEC["tags"] if tag.get("description")}


def _strict_problem_validator():
    """The Problem schema with ``additionalProperties: false``: a member the server sends but
    the document does not declare fails validation."""
    components = yaml.safe_load(docs.OPENAPI_PATH.read_text())["components"]
    components["schemas"]["Problem"]["additionalProperties"] = False
    schema = {"$ref": "#/components/schemas/Problem", "components": components}
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture
def alice(market):
    account = AccountFactory(name="alice")
    fund(account, USD="100", BTC="1")
    return SignedClient(ApiKeyFactory(account=account))


def _problems(alice, settings):
    """One real response per extension-carrying code, and the generic statuses."""
    settings.BOURSE_ENGINE_WAIT_S = 0
    reader = SignedClient(ApiKeyFactory(account=alice.key.account, scopes=("read",)))
    yield "timestamp_out_of_window", alice.get("/api/v1/account", timestamp=int(time.time() * 1000) - 600_000)
    yield "permission_denied", reader.post("/api/v1/orders", json={})
    yield "insufficient_balance", alice.post("/api/v1/orders", json={
        "market": "BTC-USD", "side": "buy", "type": "limit", "price": "100.00", "quantity": "5"})
    yield "validation_error", alice.post("/api/v1/orders", json={"market": "BTC-USD", "side": "up"})
    yield "unsupported_media_type", alice.client.post(
        "/api/v1/orders", data="x", content_type="text/plain",
        headers=alice.headers("POST", "/api/v1/orders", body=b"x"))
    yield "missing_credentials", Client().get("/api/v1/account")
    yield "not_found", Client().get("/api/v1/markets/NOPE-USD")
    settings.BOURSE_RATE_LIMITS = {**settings.BOURSE_RATE_LIMITS, "key": "1/86400"}
    alice.get("/api/v1/account")
    yield "rate_limited", alice.get("/api/v1/account")
    settings.BOURSE_MAX_BODY_BYTES = 10
    yield "payload_too_large", alice.post("/api/v1/orders", json={"market": "BTC-USD" * 10})


def test_problem_bodies_the_server_sends_validate_against_the_declared_schema(alice, settings):
    validator = _strict_problem_validator()
    seen = set()
    for code, response in _problems(alice, settings):
        body = response.json()
        assert body["code"] == code, body
        assert response["Content-Type"] == "application/problem+json"
        errors = [e.message for e in validator.iter_errors(body)]
        assert not errors, (code, body, errors)
        declared = SPEC["paths"][response.wsgi_request.path if response.wsgi_request.path in SPEC["paths"]
                                 else "/api/v1/markets/{symbol}"]
        operation = declared[response.wsgi_request.method.lower()]
        assert str(response.status_code) in operation["responses"], (code, response.status_code)
        seen.add(code)
    assert seen == {"timestamp_out_of_window", "permission_denied", "insufficient_balance", "validation_error",
                    "unsupported_media_type", "missing_credentials", "not_found", "rate_limited", "payload_too_large"}
