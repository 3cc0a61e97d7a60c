"""Celery tasks of the FIX session store (imported through ``CELERY_IMPORTS``)."""
from celery import shared_task

from .store import messages_prune


@shared_task(name="trading.fix.prune")
def fix_store_prune_task() -> int:
    return messages_prune()
