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
