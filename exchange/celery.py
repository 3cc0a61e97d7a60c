"""The Celery application. Broker and schedule come from settings (Redis in production,
kombu's SQLAlchemy transport on SQLite in the embedded mode: exchange/broker.py).

Logging: the worker and beat write Django's LOGGING (one JSON object per line, UTC time),
set up as soon as this module loads so even Celery's start-up warnings are JSON; Celery's
own text set-up is skipped (``setup_logging``), and its shutdown notices go through logging.
"""
import logging
import logging.config
import os

from celery import Celery
from celery.apps import worker as celery_worker_app
from celery.signals import celeryd_init, setup_logging, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")

app = Celery("bourse")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _configure_logging() -> None:
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    logging.captureWarnings(True)


@celeryd_init.connect  # the worker, before its start-up checks warn
@setup_logging.connect  # the worker and beat, instead of Celery's own handlers
def _json_logging(**kwargs):
    _configure_logging()


def _say(msg, f=None):
    """Celery's shutdown notices ("worker: Warm shutdown ...") as log lines."""
    logging.getLogger("celery.apps.worker").warning(msg.strip())


celery_worker_app.safe_say = _say


@worker_ready.connect
def _first_heartbeat(**kwargs):
    """Readiness sees a worker as soon as it starts, not only after beat's first heartbeat task."""
    from . import heartbeat

    try:
        heartbeat.beat("worker")
    except Exception:  # noqa: BLE001 -- the scheduled heartbeat tries again
        logging.getLogger("bourse.heartbeat").warning("could not record the worker's first heartbeat", exc_info=True)
