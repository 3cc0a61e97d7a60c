"""Key-state events (``apikeys.events``): published after commit by the key services and the
owner's Active flag, delivered to subscribers in any process, and a periodic ``recheck`` so a
lost event is still acted on."""
import threading
import time

import pytest

from apikeys import events
from apikeys.services import apikey_revoke, apikey_update
from tests.factories import ApiKeyFactory

pytestmark = [pytest.mark.django_db(transaction=True)]


def _wait_for(seen, kind, timeout=2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in seen if e.kind == kind]
        if found:
            return found
        time.sleep(0.02)
    return []


def test_update_publishes_one_event_per_kind_of_change_and_a_label_none():
    key = ApiKeyFactory()
    seen = []
    subscription = events.subscribe(seen.append)
    try:
        apikey_update(key=key, label="only the label")
        apikey_update(key=key, scopes=["read"], ip_allowlist=["10.0.0.0/8"])
        assert _wait_for(seen, "allowlist_changed")
        assert _wait_for(seen, "scopes_changed")
        kinds = [e.kind for e in seen if e.kind != events.RECHECK]
        assert sorted(kinds) == ["allowlist_changed", "scopes_changed"]
        assert all(e.key_ids == (key.key_id,) for e in seen if e.kind != events.RECHECK)
    finally:
        subscription.close()


def test_nothing_is_published_for_a_rolled_back_change():
    from django.db import transaction

    key = ApiKeyFactory()
    seen = []
    subscription = events.subscribe(seen.append)
    try:
        with transaction.atomic():
            events.publish("revoked", [key.key_id])
            transaction.set_rollback(True)
        assert not _wait_for(seen, "revoked", timeout=0.5)
    finally:
        subscription.close()


def test_a_malformed_message_is_ignored():
    assert events.KeyEvent.decode(b"not json") is None
    assert events.KeyEvent.decode(b'{"kind": "bogus", "key_ids": []}') is None
    assert events.KeyEvent.decode(b'{"kind": "revoked", "key_ids": ["bk_1"]}') == events.KeyEvent("revoked", ("bk_1",))


def test_events_reach_a_subscriber_and_a_lost_event_is_covered_by_the_recheck(settings):
    settings.BOURSE_KEY_RECHECK_S = 0.3
    seen, got = [], threading.Event()

    def callback(event):
        seen.append(event)
        got.set()

    subscription = events.subscribe(callback)
    try:
        key = ApiKeyFactory()
        apikey_revoke(key=key)
        assert _wait_for(seen, "revoked")
        assert events.KeyEvent("revoked", (key.key_id,)) in seen
        seen.clear()
        time.sleep(0.7)
        assert any(e.kind == events.RECHECK and e.key_ids == () for e in seen)
    finally:
        subscription.close()


def test_an_event_names_every_key_of_a_deactivated_owner():
    first = ApiKeyFactory()
    second = ApiKeyFactory(account=first.account)
    seen = []
    subscription = events.subscribe(seen.append)
    try:
        owner = first.account.owner
        owner.is_active = False
        owner.save()
        event = _wait_for(seen, "owner_deactivated")[0]
        assert set(event.key_ids) == {first.key_id, second.key_id}
    finally:
        subscription.close()
