"""Operators manage keys comfortably in the console (issue 13, item 9): a key's own page has
a Revoke button that asks for a reason (recorded in the audit event); one "new trader" form
does what create_trader does; money is shown at the asset's precision."""
import re

import pytest
from django.contrib.auth import get_user_model

from accounts.models import Account, Balance
from apikeys.models import ApiKey
from audit.models import AuditEvent
from tests.factories import ApiKeyFactory, AssetFactory
from tests.support import fund

pytestmark = pytest.mark.django_db


def test_the_key_page_revokes_with_a_reason(operations_client, support_client):
    key = ApiKeyFactory()
    page = operations_client.get(f"/admin/apikeys/apikey/{key.pk}/change/")
    revoke_url = f"/admin/apikeys/apikey/{key.pk}/revoke/"
    assert revoke_url in page.content.decode()
    assert revoke_url not in support_client.get(f"/admin/apikeys/apikey/{key.pk}/change/").content.decode()
    assert support_client.post(revoke_url, {"reason": "x"}).status_code == 403
    # a reason is required
    refused = operations_client.post(revoke_url, {"reason": ""})
    assert refused.status_code == 200 and b"This field is required" in refused.content
    key.refresh_from_db()
    assert key.status == ApiKey.Status.ACTIVE
    done = operations_client.post(revoke_url, {"reason": "customer reported the secret leaked"})
    assert done.status_code == 302 and done["Location"].endswith(f"/admin/apikeys/apikey/{key.pk}/change/")
    key.refresh_from_db()
    assert key.status == ApiKey.Status.REVOKED
    event = AuditEvent.objects.get(action="apikey.revoked")
    assert (event.reason, event.target_id, event.actor_label) == ("customer reported the secret leaked", key.key_id, "olga-ops")
    # the button is gone once revoked
    assert revoke_url not in operations_client.get(f"/admin/apikeys/apikey/{key.pk}/change/").content.decode()


def test_one_form_creates_a_trader_with_key_and_deposits(super_client):
    AssetFactory(code="USD", scale=2)
    AssetFactory(code="BTC", scale=8)
    listing = super_client.get("/admin/apikeys/apikey/")
    assert "/admin/apikeys/apikey/new-trader/" in listing.content.decode()
    bad = super_client.post("/admin/apikeys/apikey/new-trader/", {
        "name": "dora", "deposits": "USD=1000, XYZ=5", "scheme": "hmac", "scopes": ["read", "trade"]})
    assert bad.status_code == 200 and b"asset_not_found" in bad.content
    assert not get_user_model().objects.filter(username="dora").exists()
    page = super_client.post("/admin/apikeys/apikey/new-trader/", {
        "name": "dora", "deposits": "USD=1000\nBTC=0.5", "scheme": "hmac", "scopes": ["read", "trade"], "label": "dora bot"})
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    account = Account.objects.get(name="dora")
    key = ApiKey.objects.get(account=account)
    assert (key.label, key.scopes) == ("dora bot", ["read", "trade"])
    secret = re.search(r'id="one-time-credential">([^<]+)<', page.content.decode()).group(1)
    assert len(secret) > 20
    balances = {b.asset_id: b.available for b in Balance.objects.filter(account=account)}
    assert {k: str(v.normalize()) for k, v in balances.items()} == {"USD": "1E+3", "BTC": "0.5"}


def test_money_is_shown_at_the_assets_precision(super_client, trader):
    AssetFactory(code="USD", scale=2)
    fund(trader, USD="1500")
    html = super_client.get("/admin/accounts/balance/").content.decode()
    assert "1500.00" in html and "1500.000000000000000000" not in html
    html = super_client.get(f"/admin/accounts/account/{trader.pk}/change/").content.decode()
    assert "1500.00" in html and "1500.0000" not in html
    html = super_client.get("/admin/accounts/ledgerentry/").content.decode()
    assert "1500.00" in html and "1500.000000000000000000" not in html
