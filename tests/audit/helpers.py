"""Helpers for tests that touch the audit trail."""
from django.db import connection, transaction

from audit import triggers
from audit.models import AuditEvent, AuditPending, AuditSeal, AuthFailureWindow


def empty_audit_trail() -> None:
    """Delete every audit row with the append-only guard lifted for the moment: what a
    transactional test's teardown needs before Django empties the tables (on SQLite it
    deletes rows, which the guard refuses; PostgreSQL truncates, which it allows)."""
    if connection.vendor != "sqlite":
        return
    with transaction.atomic():
        with triggers.suspended():
            AuditSeal.objects.all().delete()
            AuditEvent.objects.all().delete()
        AuditPending.objects.all().delete()
        AuthFailureWindow.objects.all().delete()


def events(action: str | None = None):
    queryset = AuditEvent.objects.order_by("id")
    return list(queryset.filter(action=action) if action else queryset)
