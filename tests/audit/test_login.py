"""The console log-in: audited, and rate-limited per source IP and per username."""
import time
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from audit import login
from audit.models import AuditEvent
from tests.audit.conftest import PASSWORD

pytestmark = pytest.mark.django_db
LOGIN = "/admin/login/"


@pytest.fixture(autouse=True)
def limits(settings, monkeypatch):
    settings.BOURSE_ADMIN_LOGIN_MAX_FAILURES_PER_USER = 3
    settings.BOURSE_ADMIN_LOGIN_MAX_FAILURES_PER_IP = 5
    settings.BOURSE_ADMIN_LOGIN_WINDOW_S = 900
    # The windows are fixed (every 900 s of the epoch): a test whose attempts straddled an edge
    # saw its count start again (a CI run failed at 06:00:00). The log-in's clock starts 10 s
    # into a window and runs at the real pace, so no test here reaches the next edge.
    start = time.time()
    base = (start // 900) * 900 + 10
    monkeypatch.setattr(login, "time", SimpleNamespace(time=lambda: base + (time.time() - start)))


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("sue", "sue@example.com", PASSWORD, is_staff=True)


def attempt(username, password, ip="192.0.2.10", request_id="req-login"):
    return Client(REMOTE_ADDR=ip).post(
        LOGIN, {"username": username, "password": password, "next": "/admin/"}, HTTP_X_REQUEST_ID=request_id
    )


def test_successful_login_is_audited(staff):
    response = attempt("sue", PASSWORD)
    assert response.status_code == 302
    (event,) = AuditEvent.objects.filter(action="admin.login")
    assert (event.actor_type, event.actor_label, event.source_ip, event.request_id) == ("user", "sue", "192.0.2.10", "req-login")
    assert (event.target_type, event.target_id) == ("auth.user", str(staff.pk))


def test_failed_login_is_audited_with_the_username_typed(staff):
    response = attempt("sue", "wrong")
    assert response.status_code == 200
    (event,) = AuditEvent.objects.filter(action="admin.login_failed")
    assert (event.outcome, event.target_id, event.source_ip, event.reason) == ("refused", "sue", "192.0.2.10", "bad_credentials")
    assert PASSWORD not in str(event.after) and "wrong" not in str(event.after)


def test_too_many_failures_for_a_username_block_even_the_right_password(staff):
    for i in range(3):
        assert attempt("sue", "wrong", ip=f"192.0.2.{20 + i}").status_code == 200
    response = attempt("sue", PASSWORD, ip="192.0.2.99")
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 900
    assert b"Too many failed log-in attempts" in response.content
    assert not AuditEvent.objects.filter(action="admin.login").exists()
    refused = AuditEvent.objects.filter(action="admin.login_failed", reason="rate_limited")
    assert refused.count() == 1 and refused.get().source_ip == "192.0.2.99"


def test_too_many_failures_from_one_address_block_it(staff):
    for i in range(5):
        attempt(f"nobody{i}", "wrong", ip="192.0.2.50")
    assert attempt("sue", PASSWORD, ip="192.0.2.50").status_code == 429
    assert attempt("sue", PASSWORD, ip="192.0.2.51").status_code == 302  # another address is fine


def test_success_clears_the_username_count(staff):
    attempt("sue", "wrong")
    attempt("sue", "wrong")
    assert attempt("sue", PASSWORD).status_code == 302
    attempt("sue", "wrong")
    attempt("sue", "wrong")
    assert attempt("sue", PASSWORD).status_code == 302


@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_passwords_cannot_exceed_the_limit(monkeypatch):
    """Ten wrong passwords at once for one username (limit 3): every one of them passes any
    read of the count before the first is counted, unless the attempt reserves its place
    atomically first. At most 3 reach the password check; the others are refused (429)."""
    import threading

    from django.contrib.auth import forms as auth_forms

    get_user_model().objects.create_user("sam", "sam@example.com", PASSWORD, is_staff=True)
    attempts = 10
    barrier = threading.Barrier(attempts, timeout=2)
    real = auth_forms.authenticate
    checked = []

    def slow_authenticate(*args, **kwargs):
        checked.append(kwargs.get("username"))
        try:
            barrier.wait()  # hold every checked attempt until all ten have arrived (or 2 s)
        except threading.BrokenBarrierError:
            pass
        return real(*args, **kwargs)

    monkeypatch.setattr(auth_forms, "authenticate", slow_authenticate)
    statuses = []

    def one(i):
        statuses.append(attempt("sam", "wrong", ip=f"198.51.100.{i}").status_code)
        from django.db import connection

        connection.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(checked) == 3, checked
    assert sorted(statuses) == [200] * 3 + [429] * 7
    assert attempt("sam", PASSWORD, ip="198.51.100.99").status_code == 429  # still locked


def test_a_throttled_form_without_a_request_refuses_with_the_rate_limit(staff):
    # The form works without a request (Django allows it): the refusal must not depend on
    # having one to carry the wait to the Retry-After header.
    from audit.login import ThrottledAuthenticationForm, login_failed

    for _ in range(3):
        login_failed("", "sue")
    form = ThrottledAuthenticationForm(request=None, data={"username": "sue", "password": PASSWORD})
    assert not form.is_valid()
    assert [error.code for error in form.non_field_errors().as_data()] == ["rate_limited"]
    assert AuditEvent.objects.filter(action="admin.login_failed", reason="rate_limited").count() == 1
