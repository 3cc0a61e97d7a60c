"""Celery tasks of the project package: the worker's heartbeat (scheduled by beat every
``BOURSE_WORKER_HEARTBEAT_S``), which readiness reads as the worker role being up."""
from celery import shared_task

from . import heartbeat


@shared_task(name="exchange.heartbeat", ignore_result=True)
def heartbeat_task() -> None:
    heartbeat.beat("worker")
