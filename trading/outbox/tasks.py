"""Celery tasks of the outbox (imported through ``CELERY_IMPORTS``)."""
from celery import shared_task

from .services import outbox_prune


@shared_task(name="trading.outbox.prune")
def outbox_prune_task() -> int:
    return outbox_prune()
