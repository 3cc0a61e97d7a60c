"""The per-process key cache: a key-state event published by any process drops the key's
cached record at once, so the next request reads the key again (not only after
BOURSE_KEY_CACHE_S)."""
import time

import pytest

from apikeys import events, keycache
from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_key_state_event_drops_the_cached_record(settings):
    settings.BOURSE_KEY_CACHE_S = 3600  # only the event can drop it within the test
    key = ApiKeyFactory()
    first = keycache.key_get(key.key_id)
    assert first.key is not None and keycache.key_get(key.key_id) is first  # cached
    events.publish("revoked", [key.key_id])  # outside a transaction: sent at once, to every process
    deadline = time.monotonic() + 2
    while keycache.key_get(key.key_id) is first and time.monotonic() < deadline:
        time.sleep(0.02)
    assert keycache.key_get(key.key_id) is not first


def test_unknown_ids_are_cached_as_misses_and_the_cache_is_bounded(monkeypatch, settings):
    settings.BOURSE_KEY_CACHE_S = 3600
    monkeypatch.setattr(keycache, "MAX_ENTRIES", 5)
    for i in range(20):
        assert keycache.key_get(f"bk_nosuchkey{i:04d}").key is None
    assert len(keycache._entries) == 5


def test_a_refresh_reads_the_key_but_decrypts_only_a_changed_secret(monkeypatch, settings):
    from apikeys import crypto

    settings.BOURSE_KEY_CACHE_S = 0.01
    decrypted = []
    real = crypto.decrypt_secret
    monkeypatch.setattr(crypto, "decrypt_secret", lambda token: (decrypted.append(token), real(token))[1])
    key = ApiKeyFactory()
    first = keycache.key_get(key.key_id)
    time.sleep(0.02)
    second = keycache.key_get(key.key_id)
    assert second is not first and second.secret == first.secret
    assert len(decrypted) == 1  # the refresh re-read the row, not the secret
    time.sleep(0.02)
    assert keycache.key_get("bk_nosuchkey0001").key is None
    time.sleep(0.02)
    assert keycache.key_get("bk_nosuchkey0001").key is None
    assert len(decrypted) == 2  # an unknown id: the decoy's decryption once, as a real key's
    rotated = crypto.new_hmac_secret()
    type(key).objects.filter(pk=key.pk).update(secret_encrypted=crypto.encrypt_secret(rotated))
    time.sleep(0.02)
    assert keycache.key_get(key.key_id).secret == rotated.encode()
    assert len(decrypted) == 3


# --- the revalidator: one query confirms every key requests used lately ---------------------


def test_revalidation_keeps_an_unchanged_key_fresh_without_a_request_reading_it(settings, django_assert_num_queries):
    settings.BOURSE_KEY_CACHE_S = 0.3
    key = ApiKeyFactory()
    other = ApiKeyFactory()
    first = keycache.key_get(key.key_id)
    keycache.key_get(other.key_id)
    time.sleep(0.2)
    with django_assert_num_queries(1):  # both keys, one query
        assert keycache.revalidate() == (2, 0)
    time.sleep(0.15)  # past the lifetime since the request's read, not since the revalidation
    with django_assert_num_queries(0):
        assert keycache.key_get(key.key_id).key is first.key


def test_revalidation_drops_a_key_changed_behind_the_services(settings):
    from django.contrib.auth import get_user_model

    settings.BOURSE_KEY_CACHE_S = 3600
    key = ApiKeyFactory()
    first = keycache.key_get(key.key_id)
    assert first.key is not None and first.key.account.owner.is_active
    get_user_model().objects.filter(pk=key.account.owner_id).update(is_active=False)  # no event
    assert keycache.revalidate() == (0, 1)
    again = keycache.key_get(key.key_id)
    assert again is not first and again.key is not None and not again.key.account.owner.is_active


def test_revalidation_leaves_a_key_it_cannot_see_to_expire(settings):
    settings.BOURSE_KEY_CACHE_S = 3600
    key = ApiKeyFactory()
    first = keycache.key_get(key.key_id)
    type(key).objects.filter(pk=key.pk).delete()
    assert keycache.revalidate() == (0, 0)
    assert keycache.key_get(key.key_id) is first  # still within its lifetime; never made fresher


def test_revalidation_reads_only_keys_used_lately(settings, monkeypatch, django_assert_num_queries):
    settings.BOURSE_KEY_CACHE_S = 0.05
    key = ApiKeyFactory()
    keycache.key_get(key.key_id)
    time.sleep(0.05 * keycache.RECENT_LIFETIMES + 0.05)
    with django_assert_num_queries(0):
        assert keycache.revalidate() == (0, 0)
