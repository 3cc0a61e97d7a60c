"""Every long-running role exempts what it loaded at start-up from later garbage collections
(``exchange/heap.py``): the servers' ASGI application, the management-command roles (engine,
FIX gateway, serve_http, the embedded run, the metrics server) and the Celery worker."""
import subprocess
import sys

import pytest
from celery import signals

from exchange import celery as bourse_celery  # noqa: F401  (connects the worker's signal handlers)
from exchange import heap, preflight
from exchange.management.base import RoleCommand
from tests.support import subprocess_env


def test_settle_freezes_what_is_alive():
    import gc

    before = gc.get_freeze_count()
    try:
        assert heap.settle() > before
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()  # the test process keeps collecting as before


@pytest.mark.django_db
def test_the_servers_application_settles_its_heap_once_loaded():
    """daphne imports ``exchange.asgi``: by then Django, the URL configuration and every view
    are loaded, and frozen."""
    code = "import gc, exchange.asgi; print(gc.get_freeze_count())"
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip().splitlines()[-1]) > 50_000, out.stdout


def test_a_role_command_settles_its_heap_after_its_checks(monkeypatch):
    calls = []
    monkeypatch.setattr(preflight, "run_checks", lambda *a, **k: calls.append("checks"))
    monkeypatch.setattr(heap, "settle", lambda: calls.append("settle"))

    class Role(RoleCommand):
        role = "test"

        def handle(self, *args, **options):
            calls.append("handle")

    Role().execute(no_color=True, force_color=False, skip_checks=True, stdout=None, stderr=None)
    assert calls == ["checks", "settle", "handle"]


@pytest.mark.filterwarnings("ignore:DjangoFixup.on_worker_init called without a sender")  # Celery's own handler
def test_the_celery_worker_settles_its_heap_at_start(monkeypatch):
    calls = []
    monkeypatch.setattr(preflight, "check_or_exit", lambda *a, **k: calls.append("checks"))
    monkeypatch.setattr(heap, "settle", lambda: calls.append("settle"))
    signals.worker_init.send(sender=None)
    assert "settle" in calls
