"""NUL (and other control characters) never reach a query: PostgreSQL's text cannot hold NUL,
and a query parameter, path parameter, JSON string or key, WebSocket frame or FIX field
holding one answered 500 there. Each transport refuses it at its edge with its stable code."""

import pytest

from tests.factories import AccountFactory, ApiKeyFactory
from tests.signed import SignedClient
from tests.support import fund
from tests.ws.helpers import connected, scenario
from trading.fix.codec import FieldError, parse_fields


@pytest.fixture
def alice(market):
    account = AccountFactory(name="alice")
    fund(account, USD="10000", BTC="10")
    return SignedClient(ApiKeyFactory(account=account))


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "query"), [
    ("/api/v1/ledger", "asset=%00"),
    ("/api/v1/fills", "market=KF%00"),
    ("/api/v1/orders", "status=closed&market=%C2%A7%1E%00N"),
])
def test_rest_refuses_control_characters_in_private_parameters(alice, path, query):
    response = alice.get(path, query=query)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "validation_error"


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/v1/markets/BTC%00USD/book", "/api/v1/markets/BTC%00USD/trades",
                                 "/api/v1/markets?x%00=1"])
def test_rest_refuses_control_characters_in_public_parameters(client, market, url):
    response = client.get(url)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "validation_error"


@pytest.mark.django_db
@pytest.mark.parametrize("body", [
    {"market": "BTC-USD\u0000", "side": "buy", "type": "limit", "price": "1.00", "quantity": "1.0000"},
    {"market": "BTC-USD", "side": "buy", "type": "limit", "price": "1.00", "quantity": "1.0000", "client_order_id": "a\u0000"},
    {"market": "BTC-USD", "side": "buy", "type": "limit", "price": "1.00", "quantity": "1.0000", "\u0000": "x"},
])
def test_rest_refuses_nul_in_a_json_body(alice, body):
    response = alice.post("/api/v1/orders", json=body)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "validation_error"


@pytest.mark.django_db(transaction=True)
@scenario
async def test_websocket_refuses_nul_in_a_frame(market):
    async with connected() as ws:
        reply = await ws.ask({"op": "subscribe", "id": "s", "channels": ["book:BTC-USD\u0000"]})
        assert (reply["type"], reply["code"], reply["id"]) == ("error", "invalid_message", "s")
        assert await ws.ask({"op": "ping", "id": "alive"}) == {"type": "pong", "id": "alive"}


def test_fix_refuses_nul_in_a_text_field_but_not_in_raw_data():
    with pytest.raises(FieldError) as refused:
        parse_fields(b"55=BTC\x00USD\x01")
    assert refused.value.tag == 55
    assert parse_fields(b"95=3\x0196=a\x00b\x01") == [(95, "3"), (96, "a\x00b")]
