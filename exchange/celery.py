"""The Celery application. Broker and schedule come from settings (Redis in production,
kombu's SQLAlchemy transport on SQLite in the embedded mode: exchange/broker.py)."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")

app = Celery("bourse")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
