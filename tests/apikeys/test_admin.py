"""API keys in the admin: secret shown once at creation, edits and revocation via services."""
import re

import pytest
from django.contrib.auth import get_user_model

from apikeys import crypto
from apikeys.models import ApiKey
from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    user = get_user_model().objects.create_superuser("op", "op@example.com", "pw-for-tests-only")
    client.force_login(user)
    return client


def test_create_shows_the_secret_once(operator, trader):
    assert operator.get("/admin/apikeys/apikey/add/").status_code == 200
    response = operator.post(
        "/admin/apikeys/apikey/add/",
        {"account": trader.pk, "label": "mm bot", "scheme": "hmac", "scopes": ["read", "trade"],
         "ip_allowlist": "203.0.113.0/24\n10.0.0.1"},
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = re.search(rb'id="one-time-credential">([^<]+)<', response.content).group(1).decode()
    key = ApiKey.objects.get()
    assert crypto.decrypt_secret(key.secret_encrypted) == secret
    assert key.ip_allowlist == ["203.0.113.0/24", "10.0.0.1/32"] and key.scopes == ["read", "trade"]
    # never again: not on the change page, not in the list
    for url in (f"/admin/apikeys/apikey/{key.pk}/change/", "/admin/apikeys/apikey/"):
        page = operator.get(url)
        assert page.status_code == 200 and secret.encode() not in page.content


def test_create_ed25519_shows_the_generated_private_key(operator, trader):
    response = operator.post("/admin/apikeys/apikey/add/", {"account": trader.pk, "scheme": "ed25519", "scopes": ["read"]})
    assert b"Private key" in response.content and ApiKey.objects.get().scheme == "ed25519"


def test_create_with_a_bad_cidr_shows_the_error_and_writes_nothing(operator, trader):
    response = operator.post("/admin/apikeys/apikey/add/",
                             {"account": trader.pk, "scheme": "hmac", "scopes": ["read"], "ip_allowlist": "999.1.1.1"})
    assert response.status_code == 200 and b"999.1.1.1" in response.content
    assert not ApiKey.objects.exists()


def test_edit_scopes_allowlist_expiry(operator, trader):
    key = ApiKeyFactory(account=trader, scopes=["read"])
    response = operator.post(
        f"/admin/apikeys/apikey/{key.pk}/change/",
        {"label": "renamed", "scopes": ["read", "trade"], "ip_allowlist": "198.51.100.0/24",
         "expires_at_0": "2099-01-01", "expires_at_1": "00:00:00"},
    )
    assert response.status_code == 302, response.content
    key.refresh_from_db()
    assert key.label == "renamed" and key.scopes == ["read", "trade"] and key.ip_allowlist == ["198.51.100.0/24"]
    assert key.expires_at.year == 2099


def test_revoke_action_and_no_delete(operator, trader):
    key = ApiKeyFactory(account=trader)
    response = operator.post("/admin/apikeys/apikey/", {"action": "revoke_keys", "_selected_action": [key.pk]})
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.status == "revoked" and key.revoked_at is not None
    assert operator.get(f"/admin/apikeys/apikey/{key.pk}/delete/").status_code == 403


def test_revoking_needs_the_revoke_permission_not_change(client, trader):
    from django.contrib.auth.models import Permission

    # given a staff user who may view keys and revoke them, but not edit them
    user = get_user_model().objects.create_user("ops", password="pw-for-tests-only", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_apikey", "revoke_apikey"]))
    client.force_login(user)
    key = ApiKeyFactory(account=trader)
    # then the revoke action works, and editing does not
    response = client.post("/admin/apikeys/apikey/", {"action": "revoke_keys", "_selected_action": [key.pk]})
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.status == "revoked"
    assert client.post(f"/admin/apikeys/apikey/{key.pk}/change/", {"label": "x", "scopes": ["read"]}).status_code == 403


def test_without_the_revoke_permission_the_action_is_not_offered(client, trader):
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user("support", password="pw-for-tests-only", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_apikey"))
    client.force_login(user)
    key = ApiKeyFactory(account=trader)
    page = client.get("/admin/apikeys/apikey/")
    assert page.status_code == 200 and b"revoke_keys" not in page.content
    client.post("/admin/apikeys/apikey/", {"action": "revoke_keys", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.status == "active"
