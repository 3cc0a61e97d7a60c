"""Celery tasks of the trading app: thin wrappers over the settlement services."""
from celery import shared_task

from . import settlement


@shared_task(name="trading.settle_market", acks_late=True)
def settle_market(market_id: int) -> tuple[int, int]:
    return settlement.settlement_run(market_id)


@shared_task(name="trading.settle_sweep")
def settle_sweep() -> dict:
    return settlement.settlement_sweep()


@shared_task(name="trading.reconcile")
def reconcile() -> int:
    from .reconciliation import reconciliation_run

    return reconciliation_run().mismatches
