"""API key lifecycle and authentication failures leave exactly one audit event each."""
import pytest

from apikeys import services
from audit.models import AuditEvent
from tests.factories import ApiKeyFactory
from tests.signed import SignedClient

pytestmark = pytest.mark.django_db


def actions():
    return list(AuditEvent.objects.order_by("id").values_list("action", "outcome"))


def test_create_update_revoke_are_audited_once_without_secrets(trader):
    created = services.apikey_create(account=trader, scopes=["read"], label="bot")
    services.apikey_update(key=created.key, scopes=["read", "trade"])
    services.apikey_update(key=created.key, scopes=["read", "trade"])  # no change: no event
    services.apikey_revoke(key=created.key)
    services.apikey_revoke(key=created.key)  # idempotent: no second event
    events = list(AuditEvent.objects.filter(action__startswith="apikey.").order_by("id"))
    assert [e.action for e in events] == ["apikey.created", "apikey.scopes_changed", "apikey.revoked"]
    assert all(e.account_id == trader.pk and e.target_id == created.key.key_id for e in events)
    assert events[1].before == {"scopes": ["read"]} and events[1].after == {"scopes": ["read", "trade"]}
    assert created.secret not in str([(e.before, e.after) for e in events])


def test_create_trader_audits_account_key_and_deposits(db, usd):
    services.trader_create(name="carol", deposits=[("USD", "10")])
    assert [a for a, _ in actions()] == ["account.created", "apikey.created", "balance.deposited"]


def test_a_bad_signature_is_an_auth_failure_event_with_the_source(db, trader):
    key = ApiKeyFactory(account=trader)
    client = SignedClient(key)
    response = client.get("/api/v1/account", overrides={"X-API-Signature": "A" * 44})
    assert response.status_code == 401
    (event,) = AuditEvent.objects.filter(action="auth.failed")
    assert event.source_ip == "127.0.0.1" and event.outcome == "refused"
    assert "invalid_credentials" in (event.reason + str(event.after))
