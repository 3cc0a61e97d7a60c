"""The Celery application. Broker and schedule come from settings (Redis in production,
kombu's SQLAlchemy transport on SQLite in the embedded mode: exchange/broker.py).

Logging: the worker and beat write Django's LOGGING (one JSON object per line, UTC time),
set up as soon as this module loads so even Celery's start-up warnings are JSON; Celery's
own text set-up is skipped (``setup_logging``), and its shutdown notices go through logging.
"""
import logging
import logging.config
import os
import sys

from celery import Celery, signals
from celery.apps import worker as celery_worker_app

from . import preflight

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")


def _celery_role() -> str | None:
    """``worker``/``beat`` when this process is the ``celery`` program running one, else None."""
    program = sys.argv[0] if sys.argv else ""
    if os.path.basename(program) != "celery" and not program.endswith(os.path.join("celery", "__main__.py")):
        return None
    return next((word for word in sys.argv[1:] if word in ("worker", "beat")), "celery")


if _celery_role():  # a malformed setting: one line, not Celery's traceback of the settings import
    preflight.load_settings(_celery_role() or "celery", hard=True)

if _celery_role() == "worker":
    from . import kombufix

    kombufix.install()  # the worker survives Redis going away with a task in flight

app = Celery("bourse")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _configure_logging() -> None:
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    logging.captureWarnings(True)


@signals.celeryd_init.connect  # the worker, before its start-up checks warn
@signals.setup_logging.connect  # the worker and beat, instead of Celery's own handlers
def _json_logging(**kwargs):
    _configure_logging()


def _say(msg, f=None):
    """Celery's shutdown notices ("worker: Warm shutdown ...") as log lines."""
    logging.getLogger("celery.apps.worker").warning(msg.strip())


celery_worker_app.safe_say = _say


@signals.task_prerun.connect
@signals.task_postrun.connect
def _task_database_connections(task=None, **kwargs):
    """Around each task, the database connections live as around a request: kept for
    ``CONN_MAX_AGE`` (``DB_CONN_MAX_AGE``), closed when an error left them unusable
    (Django's ``close_old_connections``). Celery's own Django fix-up closed them after every
    task (``CELERY_DB_REUSE_MAX`` now stops it): each settlement task started a new PostgreSQL
    backend, with cold catalog caches and no prepared statements (bench/order_path.md: 181
    database sessions per benchmark run instead of 22, PostgreSQL's CPU -9 to -20 %). An
    eager task runs inside its caller's transaction: nothing is closed there."""
    if getattr(getattr(task, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


@signals.worker_ready.connect
def _first_heartbeat(**kwargs):
    """Readiness sees a worker as soon as it starts, not only after beat's first heartbeat task."""
    from . import heartbeat

    try:
        heartbeat.beat("worker")
    except Exception:  # noqa: BLE001 -- the scheduled heartbeat tries again
        logging.getLogger("bourse.heartbeat").warning("could not record the worker's first heartbeat", exc_info=True)


@signals.worker_init.connect
def _worker_preflight(**_):
    """The worker refuses to start, in one line, without its database or broker (preflight)."""
    preflight.check_or_exit("worker", hard=True)


@signals.worker_init.connect
def _worker_heap_settled(**_):
    """What the worker has loaded by now (Django, the apps, Celery and kombu) is not walked by
    the garbage collector again (exchange/heap.py); a prefork pool's children, forked after
    this, inherit it so."""
    from . import heap

    heap.settle()


@signals.beat_init.connect
def _beat_preflight(**_):
    preflight.check_or_exit("beat", hard=True)


@signals.beat_init.connect
def _beat_stops_between_ticks(sender, **_):
    """SIGTERM/SIGINT ask beat's loop to stop; the loop closes the schedule once, on its way
    out. Celery's own handler closed the schedule's shelf inside the signal handler, wherever
    the main thread was: when that thread went on ticking (the signal came during start-up or
    a tick), the next tick read the closed shelf and beat exited 1 with a traceback (seen in
    CI: test_honcho_stops_every_procfile_role_with_exit_0)."""
    from celery import platforms

    def stop(signum, frame):
        sender.stop()  # the loop's flag: checked before every tick
        raise SystemExit()  # out of a sleep between ticks at once

    platforms.signals.update(SIGTERM=stop, SIGINT=stop)
