"""The embedded mode's Celery broker loses no message: several processes send at once while
a consumer takes them, and every message arrives exactly once, whole."""
import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings

from exchange.celery import app
from tests.support import subprocess_env

SENDERS = 4
PER_SENDER = 40

SEND = """
import sys
import django
django.setup()
from exchange.celery import app
name, sender, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with app.connection_for_write() as connection:
    queue = connection.SimpleQueue(name)
    for n in range(count):
        queue.put({"sender": sender, "n": n, "padding": "x" * 300_000})
    queue.close()
"""

pytestmark = pytest.mark.skipif(
    bool(getattr(settings, "REDIS_URL", None)) or str(settings.CELERY_BROKER_URL).startswith("redis"),
    reason="with REDIS_URL the broker is Redis; this tests the embedded mode's own broker",
)


def test_concurrent_senders_lose_no_message():
    name = f"stress-{uuid.uuid4().hex[:8]}"
    env = {**subprocess_env(), "DJANGO_SETTINGS_MODULE": "exchange.settings"}
    env.pop("DATABASE_URL", None)  # the broker is what is tested; the senders touch no database
    senders = [
        subprocess.Popen([sys.executable, "-c", SEND, name, str(i), str(PER_SENDER)], env=env,
                         stderr=subprocess.PIPE)
        for i in range(SENDERS)
    ]
    received = []
    deadline = time.monotonic() + 120
    with app.connection_for_write() as connection:
        queue = connection.SimpleQueue(name)
        try:
            while len(received) < SENDERS * PER_SENDER and time.monotonic() < deadline:
                try:
                    message = queue.get(timeout=1)
                except queue.Empty:
                    continue
                received.append((message.payload["sender"], message.payload["n"]))
                assert len(message.payload["padding"]) == 300_000  # whole, never half-written
                message.ack()
        finally:
            queue.close()
    for process in senders:
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err.decode()[-2000:]
    expected = {(str(s), n) for s in range(SENDERS) for n in range(PER_SENDER)}
    assert len(received) == len(expected) and set(received) == expected  # none lost, none twice
