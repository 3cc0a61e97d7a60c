"""Authentication failures are audited, but a flood from one source cannot fill the disk:
the first few per window are events, the rest one summary when the window closes."""
import datetime as dt

import pytest
from django.utils import timezone

from audit.models import AuditEvent, AuthFailureWindow
from audit.services import audit_auth_failure, audit_flush_auth_failures

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def small_limits(settings):
    settings.BOURSE_AUDIT_AUTH_FAILURE_DETAIL_LIMIT = 3
    settings.BOURSE_AUDIT_AUTH_FAILURE_WINDOW_S = 60


@pytest.fixture
def frozen_time(monkeypatch):
    """Pin the window clock at 30 s into a window, so a test never straddles two."""
    now = (int(timezone.now().timestamp()) // 60) * 60 + 30
    monkeypatch.setattr("audit.services.time.time", lambda: float(now))
    return now


def test_a_failure_is_one_event_with_source_key_and_reason(frozen_time):
    event = audit_auth_failure("203.0.113.7", "key_zzz", "invalid_credentials")
    assert event is not None
    event.refresh_from_db()
    assert (event.action, event.outcome, event.actor_type) == ("auth.failed", "refused", "anonymous")
    assert (event.source_ip, event.target_type, event.target_id, event.reason) == (
        "203.0.113.7", "apikeys.apikey", "key_zzz", "invalid_credentials")
    assert event.after == {"channel": "api", "failure_in_window": 1, "window_limit": 3}


def test_a_flood_writes_a_bounded_number_of_rows_and_one_summary(frozen_time):
    results = [audit_auth_failure("203.0.113.7", f"key_{i}", "invalid_credentials") for i in range(500)]

    assert sum(r is not None for r in results) == 3
    assert AuditEvent.objects.count() == 3
    assert AuthFailureWindow.objects.count() == 1

    # window still open (at the frozen instant: the real clock may have passed the minute)
    assert audit_flush_auth_failures(now=dt.datetime.fromtimestamp(frozen_time, dt.UTC)) == 0
    window_end = dt.datetime.fromtimestamp(frozen_time - 30 + 60, dt.UTC)
    assert audit_flush_auth_failures(now=window_end) == 1
    assert audit_flush_auth_failures(now=window_end) == 0  # summarised once

    summary = AuditEvent.objects.get(action="auth.failures_suppressed")
    assert (summary.target_type, summary.target_id, summary.source_ip) == ("source_ip", "203.0.113.7", "203.0.113.7")
    assert (summary.after["total"], summary.after["recorded"], summary.after["suppressed"]) == (500, 3, 497)
    assert not AuthFailureWindow.objects.exists()


def test_sources_and_channels_are_counted_separately(frozen_time):
    for _ in range(4):
        audit_auth_failure("203.0.113.7", "k", "invalid_credentials")
        audit_auth_failure("203.0.113.8", "k", "invalid_credentials")
        audit_auth_failure("203.0.113.7", "k", "bad_logon", channel="fix")
    assert AuditEvent.objects.count() == 9
    assert AuthFailureWindow.objects.count() == 3


def test_a_new_window_records_again(monkeypatch, frozen_time):
    for _ in range(5):
        audit_auth_failure("203.0.113.7", "k", "invalid_credentials")
    monkeypatch.setattr("audit.services.time.time", lambda: float(frozen_time + 60))
    assert audit_auth_failure("203.0.113.7", "k", "invalid_credentials") is not None
    assert AuditEvent.objects.count() == 4


def test_unknown_channel_is_refused():
    with pytest.raises(ValueError):
        audit_auth_failure("203.0.113.7", "k", "x", channel="carrier-pigeon")
