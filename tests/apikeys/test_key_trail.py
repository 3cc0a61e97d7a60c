"""Support can follow a key (issue 13, item 8): every audit event about a key — created,
scopes changed, refused on each transport, expired, revoked — names the same target (the
public key id) and the account, so one search by the key id a customer quotes shows its whole
life, and all of it appears on the account's console page; keys with the same label are told
apart by their key id."""
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.services import apikey_revoke, apikey_update
from audit.models import AuditEvent
from tests.factories import AccountFactory, ApiKeyFactory
from tests.signed import SignedClient

pytestmark = pytest.mark.django_db


def test_a_keys_whole_life_is_found_by_its_key_id_and_on_its_accounts_page():
    account = AccountFactory()
    key = ApiKeyFactory(account=account, label="demo")
    apikey_update(key=key, scopes=["read"])
    wrong = ApiKeyFactory.build(key_id=key.key_id)  # the right key id, a wrong secret
    wrong.secret = "not-the-secret"
    assert SignedClient(wrong).get("/api/v1/account").json()["code"] == "invalid_credentials"
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    from apikeys import keycache

    keycache.forget_all()
    assert SignedClient(key).get("/api/v1/account").json()["code"] == "key_expired"
    ApiKey.objects.filter(pk=key.pk).update(expires_at=None)
    apikey_revoke(key=key)

    trail = AuditEvent.objects.filter(target_type="apikeys.apikey", target_id=key.key_id).order_by("id")
    assert [(e.action, e.reason) for e in trail] == [
        ("apikey.created", ""), ("apikey.scopes_changed", ""), ("auth.failed", "invalid_credentials"),
        ("auth.failed", "key_expired"), ("apikey.revoked", ""),
    ]
    assert {e.account_id for e in trail} == {account.pk}

    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-not-real-1")
    client = Client()
    client.force_login(admin)
    page = client.get(f"/admin/accounts/account/{account.pk}/console/")
    assert page.status_code == 200
    html = page.content.decode()
    for action in ("apikey.created", "apikey.scopes_changed", "auth.failed", "apikey.revoked"):
        assert action in html, action
    assert key.key_id in html


def test_two_keys_labelled_alike_are_told_apart_in_the_trail(market):
    first, second = ApiKeyFactory(label="demo"), ApiKeyFactory(label="demo")
    for key in (first, second):
        SignedClient(key).post("/api/v1/orders", json={"market": market.symbol, "side": "buy", "type": "limit",
                                                       "price": "1", "quantity": "1"})
    labels = set(AuditEvent.objects.filter(actor_type="apikey").values_list("actor_label", flat=True))
    assert labels == {f"demo ({first.key_id})", f"demo ({second.key_id})"}
