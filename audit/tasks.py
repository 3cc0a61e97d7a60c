"""Celery tasks of the audit trail. Beat runs ``audit_seal_task`` every
``BOURSE_AUDIT_SEAL_INTERVAL_S`` as the backstop to the after-commit sealer."""
from celery import shared_task

from .services import audit_flush_auth_failures, audit_seal


@shared_task(name="audit.tasks.audit_seal_task", ignore_result=True)
def audit_seal_task() -> int:
    audit_flush_auth_failures()
    return audit_seal()
