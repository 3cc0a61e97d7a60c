"""Celery tasks of the WebSocket streams (imported through ``CELERY_IMPORTS``)."""
from celery import shared_task

from .outbox import outbox_prune


@shared_task(name="trading.ws.outbox_prune")
def outbox_prune_task() -> int:
    return outbox_prune()
