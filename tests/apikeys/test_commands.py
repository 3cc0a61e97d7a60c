"""Operator commands: create_trader (all or nothing) and rotate_api_secrets."""
import base64
import json
import time
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import Account, Balance, Journal
from apikeys.models import ApiKey
from apikeys.signing import signed_headers

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command("create_trader", *args, stdout=out)
    return out.getvalue()


def test_create_trader_json_with_deposits_gives_working_hmac_credentials(usd, btc):
    out = json.loads(run("carol", "--deposit", "USD=10000", "--deposit", "btc=1.5", "--json"))
    assert set(out) == {"account_id", "key_id", "secret"}
    account = Account.objects.get(pk=out["account_id"])
    assert account.owner.username == "carol"
    assert Balance.objects.get(account=account, asset=usd).available == Decimal("10000")
    assert Balance.objects.get(account=account, asset=btc).available == Decimal("1.5")
    key = ApiKey.objects.get(key_id=out["key_id"])
    assert key.scopes == ["read", "trade"] and key.account == account
    headers = signed_headers(key_id=out["key_id"], timestamp=int(time.time() * 1000), nonce="n" * 16,
                             method="GET", path="/api/v1/balances", secret=out["secret"])
    assert Client().get("/api/v1/balances", headers=headers).status_code == 200


def test_create_trader_ed25519_prints_a_32_byte_seed(db):
    out = json.loads(run("dave", "--scheme", "ed25519", "--scopes", "read", "--json"))
    assert set(out) == {"account_id", "key_id", "private_key"}
    assert len(base64.b64decode(out["private_key"])) == 32
    key = ApiKey.objects.get(key_id=out["key_id"])
    assert key.scopes == ["read"] and key.scheme == "ed25519"
    headers = signed_headers(key_id=out["key_id"], timestamp=int(time.time() * 1000), nonce="m" * 16,
                             method="GET", path="/api/v1/account", private_key=out["private_key"])
    assert Client().get("/api/v1/account", headers=headers).json()["account_id"] == out["account_id"]


def test_create_trader_text_output_names_the_secret(db):
    text = run("erin")
    assert "key_id" in text and "secret" in text and "shown only now" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["frank", "--deposit", "USD=100", "--deposit", "XYZ=5"], "XYZ"),
        (["frank", "--deposit", "USD=-1"], "positive"),
        (["frank", "--deposit", "USD=1.1234567"], "decimal places"),
        (["frank", "--deposit", "USD"], "ASSET=AMOUNT"),
        (["frank", "--scopes", "read,admin"], "scopes"),
    ],
)
def test_create_trader_refusal_creates_nothing(usd, args, message):
    users, accounts, journals = get_user_model().objects.count(), Account.objects.count(), Journal.objects.count()
    with pytest.raises(CommandError, match=message) as refused:
        run(*args)
    assert "nothing was created" in str(refused.value) or "ASSET=AMOUNT" in str(refused.value)
    assert get_user_model().objects.count() == users
    assert Account.objects.count() == accounts
    assert Journal.objects.count() == journals
    assert not ApiKey.objects.exists()


def test_create_trader_refuses_an_existing_name(db):
    run("gina")
    with pytest.raises(CommandError, match="already exists"):
        run("gina")
    assert Account.objects.filter(name="gina").count() == 1


def test_rotate_api_secrets_command(db):
    run("hank")
    out = StringIO()
    call_command("rotate_api_secrets", stdout=out)
    assert "Re-encrypted 1 API secret" in out.getvalue()
