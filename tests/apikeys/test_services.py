"""API key services: creation, validation refusals that write nothing, update, revoke, rotation."""
import base64
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.utils import timezone

from accounts.ledger import system_account
from apikeys import crypto, services
from apikeys.models import ApiKey
from exchange import errors
from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db


def test_hmac_key_secret_is_returned_once_and_stored_encrypted(trader):
    created = services.apikey_create(account=trader, scopes=["read", "trade"], label="bot")
    key = ApiKey.objects.get(pk=created.key.pk)
    assert key.key_id.startswith("bk_") and len(key.key_id) == 27
    assert created.secret and created.private_key is None
    assert created.secret.encode() not in bytes(key.secret_encrypted)
    assert crypto.decrypt_secret(key.secret_encrypted) == created.secret
    assert key.scopes == ["read", "trade"] and key.status == "active" and key.public_key == ""


def test_ed25519_key_with_generated_pair(trader):
    created = services.apikey_create(account=trader, scheme="ed25519")
    assert created.secret is None and len(base64.b64decode(created.private_key)) == 32
    assert created.key.secret_encrypted is None and len(base64.b64decode(created.key.public_key)) == 32


def test_ed25519_key_with_a_registered_public_key_returns_no_private_key(trader):
    seed, public = crypto.ed25519_generate()
    created = services.apikey_create(account=trader, scheme="ed25519", public_key=public)
    assert created.private_key is None and created.key.public_key == public


def test_ed25519_public_key_in_pem_is_normalised(trader):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = Ed25519PrivateKey.generate().public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    created = services.apikey_create(account=trader, scheme="ed25519", public_key=pem)
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert created.key.public_key == base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"scopes": ["read", "admin"]}, "scopes"),
        ({"scopes": []}, "scopes"),
        ({"scheme": "rsa"}, "scheme"),
        ({"ip_allowlist": ["10.0.0.0/8", "not-an-ip"]}, "ip_allowlist"),
        ({"ip_allowlist": ["10.0.0.300/8"]}, "ip_allowlist"),
        ({"expires_at": "past"}, "expires_at"),
        ({"scheme": "ed25519", "public_key": "AAAA"}, "public_key"),
        ({"scheme": "hmac", "public_key": base64.b64encode(b"k" * 32).decode()}, "public_key"),
    ],
)
def test_invalid_input_is_refused_and_writes_nothing(trader, kwargs, field):
    if kwargs.get("expires_at") == "past":
        kwargs = {**kwargs, "expires_at": timezone.now() - timedelta(minutes=1)}
    with pytest.raises(errors.ValidationError) as refused:
        services.apikey_create(account=trader, **kwargs)
    assert refused.value.errors[0]["field"] == field
    assert not ApiKey.objects.exists()


def test_keys_only_for_trader_accounts(db):
    with pytest.raises(errors.ValidationError):
        services.apikey_create(account=system_account("fees"))
    with pytest.raises(errors.NotFound):
        services.apikey_create(account=10**9)
    assert not ApiKey.objects.exists()


def test_allowlist_is_normalised(trader):
    key = services.apikey_create(account=trader, ip_allowlist="203.0.113.7, 10.1.2.3/8\n2001:db8::1/32").key
    assert key.ip_allowlist == ["203.0.113.7/32", "10.0.0.0/8", "2001:db8::/32"]


def test_update_changes_only_what_is_given(trader):
    key = ApiKeyFactory(account=trader, scopes=["read"], ip_allowlist=["10.0.0.0/8"])
    expiry = timezone.now() + timedelta(days=30)
    updated = services.apikey_update(key=key, scopes=["trade", "read"], expires_at=expiry)
    assert updated.scopes == ["read", "trade"] and updated.expires_at == expiry
    assert updated.ip_allowlist == ["10.0.0.0/8"]
    cleared = services.apikey_update(key=key.key_id, expires_at=None, ip_allowlist=[])
    assert cleared.expires_at is None and cleared.ip_allowlist == []


def test_update_refusal_writes_nothing(trader):
    key = ApiKeyFactory(account=trader, scopes=["read"])
    with pytest.raises(errors.ValidationError):
        services.apikey_update(key=key, scopes=["read"], ip_allowlist=["bogus"])
    key.refresh_from_db()
    assert key.scopes == ["read"] and key.ip_allowlist == []


def test_revoke_is_idempotent_and_final(trader):
    key = ApiKeyFactory(account=trader)
    first = services.apikey_revoke(key=key)
    again = services.apikey_revoke(key=key)
    assert first.status == again.status == "revoked" and first.revoked_at == again.revoked_at
    with pytest.raises(errors.ValidationError):
        services.apikey_update(key=key, scopes=["read"])


def test_rotation_reencrypts_with_the_newest_key(trader, settings):
    old = settings.BOURSE_ENCRYPTION_KEYS[0]
    created = services.apikey_create(account=trader)
    before = bytes(ApiKey.objects.get(pk=created.key.pk).secret_encrypted)
    new = Fernet.generate_key().decode()
    settings.BOURSE_ENCRYPTION_KEYS = [new, old]
    assert services.apikey_secrets_rotate(batch_size=1) == 1
    after = bytes(ApiKey.objects.get(pk=created.key.pk).secret_encrypted)
    assert after != before
    assert Fernet(new.encode()).decrypt(after).decode() == created.secret
    settings.BOURSE_ENCRYPTION_KEYS = [new]  # the old key can now be dropped
    assert crypto.decrypt_secret(after) == created.secret
