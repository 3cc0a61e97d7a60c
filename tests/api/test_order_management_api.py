"""REST order management: PATCH /orders/{id}, DELETE /orders/by-client-id/{id}, stop and gtd
orders (fields, validation codes, the order object's new fields).

The engine is stepped by hand; the views do not wait (BOURSE_ENGINE_WAIT_S=0 answers 202).
"""
from datetime import timedelta

import pytest
from django.utils import timezone

from exchange import wire
from tests.factories import AccountFactory, ApiKeyFactory
from tests.signed import SignedClient
from tests.support import fund
from trading.models import Command, Order

pytestmark = pytest.mark.django_db

LIMIT = {"market": "BTC-USD", "side": "buy", "type": "limit", "price": "100.00", "quantity": "0.5000"}


@pytest.fixture(autouse=True)
def no_wait(settings):
    settings.BOURSE_ENGINE_WAIT_S = 0


@pytest.fixture
def alice(market):
    account = AccountFactory(name="alice")
    fund(account, USD="10000", BTC="10")
    return SignedClient(ApiKeyFactory(account=account))


@pytest.fixture
def bob(market):
    account = AccountFactory(name="bob")
    fund(account, USD="10000", BTC="10")
    return SignedClient(ApiKeyFactory(account=account))


def later(**delta):
    return wire.timestamp(timezone.now() + timedelta(**delta))


def test_patch_amends_in_place(runner, alice):
    order_id = alice.post("/api/v1/orders", json={**LIMIT, "client_order_id": "a-1"}).json()["order_id"]
    runner.step()
    response = alice.request("PATCH", f"/api/v1/orders/{order_id}", json={"quantity": "0.3000", "client_order_id": "a-2"})
    assert response.status_code == 202, response.content  # nobody waited for the engine
    runner.step()
    body = alice.get(f"/api/v1/orders/{order_id}").json()
    assert (body["order_id"], body["quantity"], body["client_order_id"], body["status"]) == (
        order_id, "0.30000000", "a-2", "open")
    assert body["stop_price"] is None and body["expire_time"] is None and body["cancel_reason"] is None


@pytest.mark.parametrize(
    "change, status, code, field",
    [
        ({"quantity": 1}, 400, "validation_error", "quantity"),
        ({"price": "100.001"}, 400, "validation_error", "price"),
        ({"colour": "red"}, 400, "validation_error", "colour"),
        ({}, 400, "validation_error", "price"),
        ({"quantity": "0.0000"}, 400, "validation_error", "quantity"),
        ({"quantity": "500.0000"}, 422, "insufficient_balance", None),
    ],
)
def test_patch_refusals(runner, alice, change, status, code, field):
    order_id = alice.post("/api/v1/orders", json=LIMIT).json()["order_id"]
    runner.step()
    response = alice.request("PATCH", f"/api/v1/orders/{order_id}", json=change)
    assert response.status_code == status, response.content
    problem = response.json()
    assert problem["code"] == code
    if field:
        assert problem["errors"][0]["field"] == field
    assert not Command.objects.filter(kind="amend").exists()


def test_patch_of_a_closed_order_is_409_and_others_orders_404(runner, alice, bob):
    order_id = alice.post("/api/v1/orders", json=LIMIT).json()["order_id"]
    runner.step()
    assert bob.request("PATCH", f"/api/v1/orders/{order_id}", json={"price": "99.00"}).status_code == 404
    alice.request("DELETE", f"/api/v1/orders/{order_id}")
    runner.step()
    response = alice.request("PATCH", f"/api/v1/orders/{order_id}", json={"price": "99.00"})
    assert response.status_code == 409 and response.json()["code"] == "order_closed"


def test_patch_needs_scope_trade(runner, market):
    account = AccountFactory()
    fund(account, USD="1000")
    reader = SignedClient(ApiKeyFactory(account=account, scopes=["read"]))
    response = reader.request("PATCH", "/api/v1/orders/1", json={"price": "99.00"})
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert reader.request("DELETE", "/api/v1/orders/by-client-id/x").status_code == 403


def test_delete_by_client_id(runner, alice, bob):
    order_id = alice.post("/api/v1/orders", json={**LIMIT, "client_order_id": "c-9"}).json()["order_id"]
    runner.step()
    assert bob.request("DELETE", "/api/v1/orders/by-client-id/c-9").status_code == 404
    response = alice.request("DELETE", "/api/v1/orders/by-client-id/c-9")
    assert response.status_code == 202 and response.json()["order_id"] == order_id
    runner.step()
    body = alice.get("/api/v1/orders/by-client-id/c-9").json()
    assert body["status"] == "cancelled" and body["cancel_reason"] == "user"
    again = alice.request("DELETE", "/api/v1/orders/by-client-id/c-9")
    assert again.status_code == 409 and again.json()["code"] == "order_closed"


def test_stop_limit_waits_untriggered_then_triggers_on_a_trade(runner, alice, bob):
    stop = alice.post("/api/v1/orders", json={
        "market": "BTC-USD", "side": "buy", "type": "stop_limit", "stop_price": "101.00", "price": "102.00",
        "quantity": "0.1000"}).json()
    runner.step()
    body = alice.get(f"/api/v1/orders/{stop['order_id']}").json()
    assert (body["status"], body["stop_price"], body["type"]) == ("untriggered", "101.000000", "stop_limit")
    assert [o["order_id"] for o in alice.get("/api/v1/orders").json()["results"]] == [stop["order_id"]]
    # a trade at 101 triggers it; it rests at 102 (nothing left to buy)
    bob.post("/api/v1/orders", json={**LIMIT, "side": "sell", "price": "101.00", "quantity": "0.2000"})
    carol = AccountFactory()
    fund(carol, USD="1000")
    SignedClient(ApiKeyFactory(account=carol)).post("/api/v1/orders", json={**LIMIT, "price": "101.00", "quantity": "0.1000"})
    runner.step()
    body = alice.get(f"/api/v1/orders/{stop['order_id']}").json()
    assert body["status"] == "filled" and body["average_price"] == "101.000000"


def test_gtd_expires_with_reason_expired(runner, alice, monkeypatch):
    expire = later(seconds=30)
    response = alice.post("/api/v1/orders", json={**LIMIT, "time_in_force": "gtd", "expire_time": expire})
    assert response.status_code == 202, response.content
    order_id = response.json()["order_id"]
    runner.step()
    assert alice.get(f"/api/v1/orders/{order_id}").json()["expire_time"] == expire
    moment = timezone.now() + timedelta(seconds=31)
    monkeypatch.setattr("trading.runner.timezone.now", lambda: moment)
    runner.step()
    body = alice.get(f"/api/v1/orders/{order_id}").json()
    assert (body["status"], body["cancel_reason"]) == ("cancelled", "expired")


@pytest.mark.parametrize(
    "extra, field, code",
    [
        ({"type": "stop_limit"}, "stop_price", "required"),
        ({"stop_price": "99.00"}, "stop_price", "not_allowed"),
        ({"type": "stop_limit", "stop_price": "99.001"}, "stop_price", "tick_size"),
        ({"type": "stop_limit", "stop_price": "0"}, "stop_price", "not_positive"),
        ({"type": "stop_limit", "stop_price": "99.00", "post_only": True}, "post_only", "not_allowed"),
        ({"type": "stop_limit", "stop_price": 99}, "stop_price", "not_a_string"),
        ({"type": "stop_market", "price": None, "stop_price": "99.00"}, "quote_quantity", "required"),
        ({"time_in_force": "gtd"}, "expire_time", "required"),
        ({"expire_time": "2030-01-01T00:00:00Z"}, "expire_time", "not_allowed"),
        ({"time_in_force": "gtd", "expire_time": "2020-01-01T00:00:00Z"}, "expire_time", "in_past"),
        ({"time_in_force": "gtd", "expire_time": "2999-01-01T00:00:00Z"}, "expire_time", "too_far"),
        ({"time_in_force": "gtd", "expire_time": "tomorrow"}, "expire_time", "invalid"),
        ({"time_in_force": "gtd", "expire_time": "2030-01-01"}, "expire_time", "invalid"),
        ({"time_in_force": "gtd", "expire_time": "2030-01-01T00:00:00"}, "expire_time", "invalid"),
        ({"time_in_force": "gtd", "expire_time": 1893456000}, "expire_time", "invalid"),
    ],
)
def test_stop_and_gtd_refusals_name_the_field(alice, extra, field, code):
    response = alice.post("/api/v1/orders", json={**LIMIT, **extra})
    assert response.status_code == 400, response.content
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert (problem["errors"][0]["field"], problem["errors"][0]["code"]) == (field, code), problem
    assert not Order.objects.exists()


def test_gtd_market_order_is_refused(alice):
    body = {"market": "BTC-USD", "side": "sell", "type": "market", "quantity": "0.1000", "time_in_force": "gtd",
            "expire_time": later(minutes=5)}
    problem = alice.post("/api/v1/orders", json=body).json()
    assert (problem["errors"][0]["field"], problem["errors"][0]["code"]) == ("time_in_force", "not_allowed")


def test_stop_and_gtd_resubmission_is_idempotent(alice):
    body = {**LIMIT, "type": "stop_limit", "stop_price": "99.00", "time_in_force": "gtd",
            "expire_time": later(hours=1), "client_order_id": "s-1"}
    first = alice.post("/api/v1/orders", json=body)
    assert first.status_code == 202, first.content
    again = alice.post("/api/v1/orders", json=body)
    assert again.status_code == 200 and again.json()["order_id"] == first.json()["order_id"]
    other = alice.post("/api/v1/orders", json={**body, "stop_price": "98.00"})
    assert other.status_code == 409 and other.json()["code"] == "duplicate_client_order_id"
