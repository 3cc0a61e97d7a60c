"""GET /account, /balances, /ledger: signed, scope `read`, only the caller's own rows."""
from decimal import Decimal

import pytest

from accounts import services as money
from tests.factories import ApiKeyFactory, AssetFactory
from tests.signed import SignedClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(trader, usd, btc):
    money.balance_deposit(account=trader, asset="USD", amount="1500.50", reference="wire-1")
    money.balance_deposit(account=trader, asset="BTC", amount="0.25")
    money.balance_hold(account=trader, asset="USD", amount="500", reference="order-1")
    return SignedClient(ApiKeyFactory(account=trader, scopes=["read"]))


@pytest.fixture
def bob(other_trader, usd, btc):
    money.balance_deposit(account=other_trader, asset="USD", amount="99", reference="bob-secret-wire")
    return SignedClient(ApiKeyFactory(account=other_trader, scopes=["read"]))


def test_account_describes_the_callers_account_and_key(alice, trader):
    response = alice.get("/api/v1/account")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["account_id"] == str(trader.pk)
    assert body["name"] == trader.name
    assert body["api_key"]["key_id"] == alice.key.key_id
    assert body["api_key"]["scopes"] == ["read"]
    assert "secret" not in str(body).lower()


def places(value: str, scale: int) -> str:
    return f"{Decimal(value):.{scale}f}"


def test_balances_are_decimal_strings_in_asset_scale(alice, usd, btc):
    body = alice.get("/api/v1/balances").json()
    b, u = btc.scale, usd.scale
    assert body == {
        "results": [
            {"asset": "BTC", "total": places("0.25", b), "available": places("0.25", b), "locked": places("0", b)},
            {"asset": "USD", "total": places("1500.5", u), "available": places("1000.5", u), "locked": places("500", u)},
        ],
        "next_cursor": None,
    }


def test_balances_list_assets_never_held_as_zero_and_paginate(alice):
    AssetFactory(code="ETH", scale=6)
    first = alice.get("/api/v1/balances", query="limit=2").json()
    assert [row["asset"] for row in first["results"]] == ["BTC", "ETH"]
    assert first["results"][1] == {"asset": "ETH", "total": "0.000000", "available": "0.000000", "locked": "0.000000"}
    second = alice.get("/api/v1/balances", query=f"limit=2&cursor={first['next_cursor']}").json()
    assert [row["asset"] for row in second["results"]] == ["USD"] and second["next_cursor"] is None


def test_ledger_lists_own_entries_newest_first_with_signed_amounts(alice, usd):
    body = alice.get("/api/v1/ledger", query="asset=USD").json()
    rows = [(r["kind"], r["bucket"], r["amount"], r["reference"]) for r in body["results"]]
    assert rows == [
        ("hold", "locked", places("500", usd.scale), "order-1"),
        ("hold", "available", places("-500", usd.scale), "order-1"),
        ("deposit", "available", places("1500.5", usd.scale), "wire-1"),
    ]
    assert all(r["asset"] == "USD" for r in body["results"])
    assert body["results"][0]["created_at"].endswith("Z")


def test_ledger_never_shows_another_accounts_entries(alice, bob, other_trader):
    # given two accounts with entries, when each pages through its whole ledger
    def walk(client):
        seen, cursor = [], None
        while True:
            query = "limit=1" + (f"&cursor={cursor}" if cursor else "")
            page = client.get("/api/v1/ledger", query=query).json()
            seen += page["results"]
            cursor = page["next_cursor"]
            if cursor is None:
                return seen

    alice_rows, bob_rows = walk(alice), walk(bob)
    # then neither sees the other's entries, even through a forged cursor or asset filter
    assert len(alice_rows) == 4 and len(bob_rows) == 1
    assert not {r["entry_id"] for r in alice_rows} & {r["entry_id"] for r in bob_rows}
    assert "bob-secret-wire" not in str(alice_rows)
    from exchange.pagination import encode_cursor

    forged = alice.get("/api/v1/ledger", query=f"cursor={encode_cursor(10**9)}").json()
    assert "bob-secret-wire" not in str(forged) and len(forged["results"]) == 4


def test_ledger_unknown_asset_is_refused(alice):
    response = alice.get("/api/v1/ledger", query="asset=NOPE")
    assert response.status_code == 422
    assert response.json()["code"] == "asset_not_found"


@pytest.mark.parametrize("path", ["/api/v1/account", "/api/v1/balances", "/api/v1/ledger"])
def test_private_reads_need_credentials(client, path, db):
    response = client.get(path)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "missing_credentials"
    assert {e["field"] for e in body["errors"]} == {"X-API-Key", "X-API-Timestamp", "X-API-Nonce", "X-API-Signature"}


@pytest.mark.parametrize("path", ["/api/v1/account", "/api/v1/balances", "/api/v1/ledger"])
def test_private_reads_need_the_read_scope(trader, path):
    trade_only = SignedClient(ApiKeyFactory(account=trader, scopes=["trade"]))
    response = trade_only.get(path)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert response.json()["required_scope"] == "read"
