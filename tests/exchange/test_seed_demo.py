"""The embedded demo seed: market, funded traders, operator login; idempotent."""
import json
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from accounts.models import Account, Balance
from trading.models import Market

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent_and_prints_working_credentials(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    first, second = StringIO(), StringIO()
    call_command("seed_demo", stdout=first)
    call_command("seed_demo", stdout=second)

    assert Market.objects.filter(symbol="BTC-USD", status="open").count() == 1
    traders = Account.objects.filter(kind="trader").order_by("name")
    assert [a.name for a in traders] == ["alice", "bob"]
    for account in traders:
        assert Balance.objects.get(account=account, asset_id="USD").available == Decimal("1000000")
        assert Balance.objects.get(account=account, asset_id="BTC").available == Decimal("100")
    stored = json.loads((tmp_path / "demo-credentials.json").read_text())
    assert stored["admin"]["password"] in first.getvalue()
    assert first.getvalue() == second.getvalue()  # same credentials on every start
    assert authenticate(username="operator", password=stored["admin"]["password"]) is not None


def test_seed_demo_traders_get_working_api_keys(settings, tmp_path):
    import time

    from django.test import Client

    from apikeys.models import ApiKey
    from apikeys.signing import signed_headers

    settings.DATA_DIR = tmp_path
    out = StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=StringIO())
    stored = json.loads((tmp_path / "demo-credentials.json").read_text())
    assert ApiKey.objects.count() == 2  # a second run creates no more keys
    for name in ("alice", "bob"):
        info = stored[name]
        assert info["key_id"] in out.getvalue() and info["secret"] in out.getvalue()
        headers = signed_headers(key_id=info["key_id"], timestamp=int(time.time() * 1000), nonce=f"seed-demo-{name}-0001",
                                 method="GET", path="/api/v1/account", secret=info["secret"])
        response = Client().get("/api/v1/account", headers=headers)
        assert response.status_code == 200 and response.json()["account_id"] == info["account_id"]
