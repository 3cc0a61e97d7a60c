"""The Celery worker keeps its database connection between tasks, as a request thread does:
Celery's Django fix-up used to close it after every task, so each settlement task opened a
new database session (a PostgreSQL backend) and lost the prepared statements. A connection
past ``CONN_MAX_AGE``, or left unusable by an error, is still closed after its task.

The fix-up is Celery's own (``DjangoWorkerFixup``, what the worker installs), driven here
through the task signals the worker sends around each task."""
import time
from types import SimpleNamespace

import pytest
from celery import signals
from celery.fixups.django import DjangoWorkerFixup
from django.db import connection

from exchange.celery import app
from trading.models import Market

pytestmark = pytest.mark.django_db(transaction=True)



class Task:  # what the signals and the fix-up read of a task
    name = "trading.settle_market"
    request = SimpleNamespace(is_eager=False)


TASK = Task()


def run_task(fixup, work=lambda: Market.objects.count()):
    """What the worker does around one task (the fix-up's handlers and the signals)."""
    fixup.on_task_prerun(sender=TASK)
    signals.task_prerun.send(sender=TASK, task_id="t", task=TASK, args=(), kwargs={})
    work()
    fixup.on_task_postrun(sender=TASK)
    signals.task_postrun.send(sender=TASK, task_id="t", task=TASK, args=(), kwargs={}, retval=None, state="SUCCESS")


@pytest.fixture
def fixup(settings):
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 60  # as deployed (DB_CONN_MAX_AGE)
    connection.close()  # the next use opens one with this setting
    return DjangoWorkerFixup(app)


def test_the_connection_outlives_the_task(fixup):
    run_task(fixup)
    opened = connection.connection
    assert opened is not None
    for _ in range(3):
        run_task(fixup)
        assert connection.connection is opened


def test_an_obsolete_or_broken_connection_is_closed_around_its_task(fixup, monkeypatch):
    run_task(fixup)
    old = connection.connection
    connection.close_at = time.monotonic() - 1  # CONN_MAX_AGE is over: the next task gets a new one
    run_task(fixup)
    assert connection.connection is not None and connection.connection is not old

    def fails():
        Market.objects.count()
        connection.errors_occurred = True  # a database error during the task ...
        monkeypatch.setattr(connection, "is_usable", lambda: False)  # ... that left it broken

    run_task(fixup, fails)
    assert connection.connection is None
