"""Refused cancels are audited, but a client cancelling a closed (or unknown) order in a loop
cannot grow the append-only trail without bound: per account and error code, the first few
per window are events, the rest one summary when the window closes (every transport cancels
through ``order_cancel``)."""
import datetime as dt

import pytest
from django.utils import timezone

from audit.models import AuditEvent, AuthFailureWindow
from audit.services import audit_flush_auth_failures
from exchange import errors
from tests.factories import AccountFactory
from tests.support import fund
from trading.services import order_cancel, order_submit

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


def refused_cancels():
    return AuditEvent.objects.filter(action="order.cancelled", outcome="refused")


def test_repeated_refused_cancels_are_a_few_events_and_one_summary_per_code(runner, market, frozen_time):
    alice, bob = AccountFactory(name="alice"), AccountFactory(name="bob")
    fund(alice, USD="1000", BTC="10")
    order = order_submit(account=alice, market="BTC-USD", side="sell", type="limit", price="100.00", quantity="1.0000").order
    runner.step()
    order_cancel(account=alice, order_id=order.pk)
    runner.step()

    for _ in range(50):
        with pytest.raises(errors.OrderClosed):
            order_cancel(account=alice, order_id=order.pk)
    for _ in range(5):
        with pytest.raises(errors.BourseError) as refused:
            order_cancel(account=alice, order_id=order.pk + 1000)
    assert refused.value.code == "not_found"
    with pytest.raises(errors.BourseError):  # another account is counted on its own
        order_cancel(account=bob, order_id=order.pk)

    closed = refused_cancels().filter(account_id=alice.pk, reason__startswith="order_closed")
    assert closed.count() == 3
    assert sorted(e.after["refusal_in_window"] for e in closed) == [1, 2, 3]
    assert {e.after["order_id"] for e in closed} == {str(order.pk)}
    assert refused_cancels().filter(account_id=alice.pk, reason__startswith="not_found").count() == 3
    assert refused_cancels().filter(account_id=bob.pk).count() == 1
    assert AuthFailureWindow.objects.count() == 2  # alice's two codes went past the limit

    assert audit_flush_auth_failures(now=dt.datetime.fromtimestamp(frozen_time, dt.UTC)) == 0  # still open
    window_end = dt.datetime.fromtimestamp(frozen_time - 30 + 60, dt.UTC)
    assert audit_flush_auth_failures(now=window_end) == 2
    assert audit_flush_auth_failures(now=window_end) == 0  # summarised once
    summaries = {e.after["code"]: e for e in AuditEvent.objects.filter(action="order.cancel_refusals_suppressed")}
    assert set(summaries) == {"order_closed", "not_found"}
    closed_summary = summaries["order_closed"]
    assert (closed_summary.account_id, closed_summary.outcome) == (alice.pk, "refused")
    assert (closed_summary.after["total"], closed_summary.after["recorded"], closed_summary.after["suppressed"]) == (50, 3, 47)
    assert (summaries["not_found"].after["total"], summaries["not_found"].after["suppressed"]) == (5, 2)
