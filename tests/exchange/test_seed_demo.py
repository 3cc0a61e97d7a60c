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


def test_the_first_signed_request_after_a_fresh_embedded_start_is_accepted(settings, tmp_path):
    # A new embedded replay store (a file no restart empties) lost nothing: the demo's very first
    # signed request, signed a moment before the store first answered, is not refused as
    # `replay_guard_reset` (which is for Redis restarts, where memory really is lost).
    import time

    from django.core.cache import cache
    from django.test import Client

    from apikeys import replay
    from apikeys.signing import signed_headers

    if settings.REDIS_URL:
        pytest.skip("with Redis an absent epoch may mean a restart: the guard refuses, by design")
    settings.DATA_DIR = tmp_path
    cache.delete(replay.EPOCH_KEY)  # a brand-new store
    signed_at = int(time.time() * 1000) - 50
    call_command("seed_demo", stdout=StringIO())
    alice = json.loads((tmp_path / "demo-credentials.json").read_text())["alice"]
    headers = signed_headers(key_id=alice["key_id"], timestamp=signed_at, nonce="fresh-embedded-start-0001",
                             method="GET", path="/api/v1/account", secret=alice["secret"])
    response = Client().get("/api/v1/account", headers=headers)
    assert response.status_code == 200, response.content
