"""The Celery application. Broker and schedule come from settings (Redis in production,
kombu's SQLAlchemy transport on SQLite in the embedded mode: exchange/broker.py)."""
import os
import sys

from celery import Celery, signals

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


@signals.worker_init.connect
def _worker_preflight(**_):
    """The worker refuses to start, in one line, without its database or broker (preflight)."""
    preflight.check_or_exit("worker", hard=True)


@signals.beat_init.connect
def _beat_preflight(**_):
    preflight.check_or_exit("beat", hard=True)
