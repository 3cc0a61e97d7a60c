"""The sealer in its production mode (``BOURSE_AUDIT_SEAL_MODE=thread``): one long-lived thread
per process seals every commit's events shortly after it, and a process that exits with a
seal due seals before it goes."""
import subprocess
import threading
import time

import pytest

from audit import sealer
from audit.models import AuditEvent
from audit.services import audit_record
from tests.support import PYTHON, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)


def _sealed_soon(timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not AuditEvent.objects.filter(seal__isnull=True).exists():
            return True
        time.sleep(0.02)
    return False


def test_one_thread_seals_every_round_and_keeps_its_connection(settings, monkeypatch):
    settings.BOURSE_AUDIT_SEAL_MODE = "thread"
    settings.BOURSE_AUDIT_SEAL_DELAY_MS = 20
    sealer._reset_after_fork()  # a sealer thread of its own for this test
    started = []
    real_start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda thread: (started.append(thread.name), real_start(thread)))
    connections = {}
    real_seal = sealer.audit_seal

    def seal(**kwargs):
        from django.db import connection

        connection.ensure_connection()
        connections[id(connection.connection)] = connection.connection
        return real_seal(**kwargs)

    monkeypatch.setattr(sealer, "audit_seal", seal)
    try:
        for round_ in range(4):
            for i in range(3):
                audit_record("market.created", target=("trading.market", round_ * 10 + i), after={"i": i})
            assert _sealed_soon(), f"round {round_} was not sealed"
    finally:
        sealer._reset_after_fork()  # the test's sealer thread is left idle, its connection closed
        for raw in connections.values():
            raw.close()
    assert started == ["audit-sealer"]  # a thread per seal connected afresh each time
    assert len(connections) == 1
    assert list(AuditEvent.objects.order_by("seal__seq").values_list("seal__seq", flat=True)) == list(range(1, 13))


def test_a_process_that_exits_with_a_seal_due_seals_first():
    env = {**subprocess_env(), "BOURSE_AUDIT_SEAL_MODE": "thread", "BOURSE_AUDIT_SEAL_DELAY_MS": "30000"}
    code = ("from audit.services import audit_record; "
            "audit_record('market.created', target=('trading.market', 1), after={'i': 1})")
    subprocess.run([PYTHON, "manage.py", "shell", "-c", code], env=env, check=True, timeout=120,
                   stdout=subprocess.DEVNULL)
    assert AuditEvent.objects.count() == 1
    assert AuditEvent.objects.filter(seal__isnull=True).count() == 0
