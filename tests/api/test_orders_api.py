"""REST orders, fills, positions and public market data, through signed requests.

The engine is stepped by hand (the views do not wait: BOURSE_ENGINE_WAIT_S=0 answers 202
at once), except in the live test, which runs a real engine process.
"""
from decimal import Decimal as D

import pytest

from accounts.models import Journal
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


def test_submit_then_read_as_the_engine_left_it(runner, alice):
    response = alice.post("/api/v1/orders", json={**LIMIT, "client_order_id": "c-1"})
    assert response.status_code == 202, response.content  # nobody waited for the engine
    body = response.json()
    assert body["status"] == "pending" and body["client_order_id"] == "c-1"
    assert (body["price"], body["quantity"], body["filled_quantity"]) == ("100.000000", "0.50000000", "0.00000000")
    assert "RateLimit" in response.headers and '"orders"' in response.headers["RateLimit-Policy"]
    runner.step()
    detail = alice.get(f"/api/v1/orders/{body['order_id']}").json()
    assert detail["status"] == "open" and detail["remaining_quantity"] == "0.50000000"
    assert alice.get("/api/v1/orders/by-client-id/c-1").json()["order_id"] == body["order_id"]
    assert [o["order_id"] for o in alice.get("/api/v1/orders").json()["results"]] == [body["order_id"]]
    assert alice.get("/api/v1/orders", query="status=closed").json()["results"] == []


@pytest.mark.parametrize(
    "change, field, code",
    [
        ({"price": 100.0}, "price", "not_a_string"),
        ({"quantity": 1}, "quantity", "not_a_string"),
        ({"price": "1e2"}, "price", "invalid"),
        ({"side": "long"}, "side", "invalid_choice"),
        ({"market": None}, "market", "null"),
        ({"surprise": 1}, "surprise", "unknown_field"),
        ({"post_only": "yes"}, "post_only", "invalid_type"),
        ({"client_order_id": "no spaces"}, "client_order_id", "invalid"),
        ({"price": "100.001"}, "price", "tick_size"),
        ({"quantity": "0.00005"}, "quantity", "lot_size"),
    ],
)
def test_invalid_bodies_get_field_errors_and_write_nothing(runner, alice, change, field, code):
    journals = Journal.objects.count()
    body = {k: v for k, v in {**LIMIT, **change}.items()}
    response = alice.post("/api/v1/orders", json=body)
    assert response.status_code == 400, response.content
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert {(e["field"], e["code"]) for e in problem["errors"]} >= {(field, code)}
    assert not Order.objects.exists() and Journal.objects.count() == journals


def test_malformed_json_is_a_validation_error(runner, alice):
    response = alice.post("/api/v1/orders", body=b'{"market": ')
    assert response.status_code == 400 and response.json()["code"] == "validation_error"


@pytest.mark.parametrize(
    "change, status, code",
    [
        ({"market": "ETH-USD"}, 422, "market_not_found"),
        ({"quantity": "500.0000"}, 422, "insufficient_balance"),
    ],
)
def test_business_refusals(runner, alice, change, status, code):
    response = alice.post("/api/v1/orders", json={**LIMIT, **change})
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert not Order.objects.exists()


def test_client_order_id_replay_and_conflict(runner, alice):
    first = alice.post("/api/v1/orders", json={**LIMIT, "client_order_id": "same"})
    again = alice.post("/api/v1/orders", json={**LIMIT, "client_order_id": "same"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["order_id"] == first.json()["order_id"]
    conflict = alice.post("/api/v1/orders", json={**LIMIT, "price": "101.00", "client_order_id": "same"})
    assert (conflict.status_code, conflict.json()["code"]) == (409, "duplicate_client_order_id")
    assert Order.objects.count() == 1


def test_read_only_key_cannot_trade(runner, market):
    reader = SignedClient(ApiKeyFactory(scopes=["read"]))
    response = reader.post("/api/v1/orders", json=LIMIT)
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    assert reader.get("/api/v1/orders").status_code == 200
    assert reader.request("DELETE", "/api/v1/orders").status_code == 403


def test_another_accounts_orders_and_fills_are_invisible(runner, alice, bob):
    placed = alice.post("/api/v1/orders", json={**LIMIT, "side": "sell", "client_order_id": "secret"}).json()
    runner.step()
    bob.post("/api/v1/orders", json={**LIMIT, "quantity": "0.2000"})
    runner.step()
    order_id = placed["order_id"]
    for response in (
        bob.get(f"/api/v1/orders/{order_id}"),
        bob.get("/api/v1/orders/by-client-id/secret"),
        bob.request("DELETE", f"/api/v1/orders/{order_id}"),
    ):
        assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert bob.get("/api/v1/fills", query={"order_id": order_id}).json()["results"] == []
    assert all(o["order_id"] != order_id for o in bob.get("/api/v1/orders", query="status=all").json()["results"])
    assert Command.objects.filter(kind="cancel").count() == 0  # bob's DELETE queued nothing


def test_cancel_and_cancel_again(runner, alice):
    order_id = alice.post("/api/v1/orders", json=LIMIT).json()["order_id"]
    runner.step()
    queued = alice.request("DELETE", f"/api/v1/orders/{order_id}")
    assert queued.status_code == 202  # the engine has not answered yet
    runner.step()
    assert alice.get(f"/api/v1/orders/{order_id}").json()["status"] == "cancelled"
    again = alice.request("DELETE", f"/api/v1/orders/{order_id}")
    assert (again.status_code, again.json()["code"]) == (409, "order_closed")


def test_cancel_all(runner, alice):
    ids = [alice.post("/api/v1/orders", json={**LIMIT, "price": f"{90 + i}.00"}).json()["order_id"] for i in range(3)]
    runner.step()
    response = alice.request("DELETE", "/api/v1/orders", query="market=BTC-USD")
    assert response.status_code == 200 and sorted(response.json()["cancelled"]) == sorted(ids)
    runner.step()
    assert alice.get("/api/v1/orders").json()["results"] == []


def test_fills_positions_and_public_market_data(runner, alice, bob, client):
    alice.post("/api/v1/orders", json={**LIMIT, "side": "sell", "price": "100.00", "quantity": "1.0000"})
    alice.post("/api/v1/orders", json={**LIMIT, "side": "sell", "price": "101.00", "quantity": "1.0000"})
    bob.post("/api/v1/orders", json={**LIMIT, "price": "99.00", "quantity": "0.3000"})
    runner.step()
    bob.post("/api/v1/orders", json={**LIMIT, "price": "100.00", "quantity": "0.4000"})
    runner.step()

    fills = bob.get("/api/v1/fills", query="market=BTC-USD").json()["results"]
    assert [(f["side"], f["price"], f["quantity"], f["fee"], f["liquidity"], f["settled"]) for f in fills] == [
        ("buy", "100.000000", "0.40000000", "0.080000", "taker", True)
    ]
    positions = {p["market"]: p for p in bob.get("/api/v1/positions").json()["results"]}
    assert positions["BTC-USD"]["net_quantity"] == "0.40000000"
    assert positions["BTC-USD"]["average_entry_price"] == "100.000000"
    assert positions["BTC-USD"]["realized_pnl"] == "-0.080000"  # the fee
    seller = {p["market"]: p for p in alice.get("/api/v1/positions").json()["results"]}["BTC-USD"]
    assert seller["net_quantity"] == "-0.40000000"

    book = client.get("/api/v1/markets/BTC-USD/book", {"depth": 5}).json()
    assert book == {
        "market": "BTC-USD",
        "sequence": runner.book.sequence,
        "bids": [["99.000000", "0.30000000"]],
        "asks": [["100.000000", "0.60000000"], ["101.000000", "1.00000000"]],
    }
    trades = client.get("/api/v1/markets/BTC-USD/trades").json()["results"]
    assert [(t["price"], t["quantity"], t["taker_side"]) for t in trades] == [("100.000000", "0.40000000", "buy")]
    ticker = client.get("/api/v1/markets/BTC-USD/ticker").json()
    assert (ticker["last_price"], ticker["best_bid"], ticker["best_ask"], ticker["volume_24h"]) == (
        "100.000000", "99.000000", "100.000000", "0.40000000"
    )
    assert client.get("/api/v1/markets/BTC-USD/book", {"depth": 0}).status_code == 400
    assert client.get("/api/v1/markets/NOPE-USD/book").status_code == 404


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_live_engine_answers_201_with_its_verdict(settings, usd, btc, market):
    import subprocess

    from tests.support import PYTHON, subprocess_env

    settings.BOURSE_ENGINE_WAIT_S = 5
    maker = SignedClient(ApiKeyFactory(account=AccountFactory()))
    taker = SignedClient(ApiKeyFactory(account=AccountFactory()))
    fund(maker.key.account, BTC="1")
    fund(taker.key.account, USD="1000")
    engine = subprocess.Popen([PYTHON, "manage.py", "run_engine"], env=subprocess_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rested = maker.post("/api/v1/orders", json={**LIMIT, "side": "sell"})
        assert (rested.status_code, rested.json()["status"]) == (201, "open"), rested.content
        filled = taker.post("/api/v1/orders", json=LIMIT)
        assert (filled.status_code, filled.json()["status"], filled.json()["average_price"]) == (201, "filled", "100.000000")
        cancel = maker.request("DELETE", f"/api/v1/orders/{rested.json()['order_id']}")
        assert (cancel.status_code, cancel.json()["code"]) == (409, "order_closed")
    finally:
        engine.terminate()
        engine.wait(10)
    assert Order.objects.get(pk=filled.json()["order_id"]).filled_quantity == D("0.5")
