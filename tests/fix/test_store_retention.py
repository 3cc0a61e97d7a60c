"""Retention of the FIX session store: sent application messages older than
``BOURSE_FIX_STORE_RETENTION_S`` are pruned in bounded batches, by beat and by hand."""
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import ApiKeyFactory
from trading.fix import store
from trading.fix.logon import format_utc_timestamp
from trading.fix.models import FixMessage, FixSession
from trading.fix.tasks import fix_store_prune_task

pytestmark = pytest.mark.django_db(transaction=True)


def _record(session, seq, moment):
    FixMessage.objects.create(session=session, seq=seq, msg_type="8", sending_time=format_utc_timestamp(moment), body="")


def test_old_messages_are_pruned_in_batches_and_recent_ones_kept(settings, monkeypatch):
    settings.BOURSE_FIX_STORE_RETENTION_S = 3600
    session = FixSession.objects.create(key=ApiKeyFactory())
    now = timezone.now()
    for seq in range(1, 8):  # older than the retention
        _record(session, seq, now - timedelta(seconds=3600 + 60 * seq))
    for seq in range(8, 11):  # within it
        _record(session, seq, now - timedelta(seconds=3000))
    batches = []
    monkeypatch.setattr(store, "PRUNE_BATCH", 3)
    original_filter = FixMessage.objects.filter

    def counting_filter(*args, **kwargs):
        if "pk__in" in kwargs:
            batches.append(len(kwargs["pk__in"]))
        return original_filter(*args, **kwargs)

    monkeypatch.setattr(FixMessage.objects, "filter", counting_filter)
    assert store.messages_prune(now) == 7
    monkeypatch.undo()
    assert batches == [3, 3, 1]
    assert sorted(FixMessage.objects.values_list("seq", flat=True)) == [8, 9, 10]
    assert store.messages_between(session.pk, 1, 10)[0].seq == 8
    assert store.messages_prune(now) == 0


def test_beat_runs_the_prune_hourly(settings):
    settings.BOURSE_FIX_STORE_RETENTION_S = 60
    session = FixSession.objects.create(key=ApiKeyFactory())
    _record(session, 1, timezone.now() - timedelta(seconds=120))
    _record(session, 2, timezone.now())
    assert fix_store_prune_task() == 1
    assert list(FixMessage.objects.values_list("seq", flat=True)) == [2]


def test_prune_is_scheduled_and_the_default_is_a_week():  # unless the environment sets it
    from exchange import settings as project_settings

    entry = project_settings.CELERY_BEAT_SCHEDULE["fix-store-prune"]
    assert entry["task"] == fix_store_prune_task.name == "trading.fix.prune"
    assert "trading.fix.tasks" in project_settings.CELERY_IMPORTS
    assert project_settings.BOURSE_FIX_STORE_RETENTION_S == 7 * 86400
