"""The database guard that makes audit rows append-only.

PostgreSQL: a PL/pgSQL row trigger before UPDATE or DELETE. SQLite: two triggers that
``RAISE(ABORT, ...)``. Both allow exactly one kind of UPDATE — the sealer's, which fills
the seal columns of a row whose seal is still empty and leaves every other column as it
was — and refuse everything else with an integrity error, whoever asks.

TRUNCATE is not guarded: Django's test runner empties tables with it between
transactional tests. Deployments that need that closed too run Bourse as a database role
that does not own the tables and lacks TRUNCATE and DELETE on ``audit_auditevent``; the
chain anchors printed by ``audit_verify`` detect a truncated trail in any case.

The migrations call ``install``; tests that must tamper with a row on purpose (to prove
``audit_verify`` notices) use ``suspended``, inside their own transaction.
"""
from __future__ import annotations

from contextlib import contextmanager

from django.db import connection as default_connection

from .chain import CONTENT_FIELDS

TABLE = "audit_auditevent"
MESSAGE = "audit events are append-only"

_PG_UNCHANGED = " AND ".join(f"NEW.{c} IS NOT DISTINCT FROM OLD.{c}" for c in CONTENT_FIELDS)
_SQLITE_UNCHANGED = " AND ".join(f"NEW.{c} IS OLD.{c}" for c in CONTENT_FIELDS)

POSTGRESQL_INSTALL = [
    f"""
    CREATE OR REPLACE FUNCTION audit_event_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE'
           AND OLD.seq IS NULL AND OLD.hash IS NULL
           AND NEW.seq IS NOT NULL AND NEW.hash IS NOT NULL AND NEW.prev_hash IS NOT NULL
           AND {_PG_UNCHANGED} THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION '{MESSAGE}: % refused on event %', TG_OP, OLD.id
            USING ERRCODE = 'restrict_violation';
    END;
    $$
    """,
    f"DROP TRIGGER IF EXISTS audit_event_append_only ON {TABLE}",
    f"""
    CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION audit_event_guard()
    """,
]
POSTGRESQL_UNINSTALL = [
    f"DROP TRIGGER IF EXISTS audit_event_append_only ON {TABLE}",
    "DROP FUNCTION IF EXISTS audit_event_guard()",
]

SQLITE_INSTALL = [
    f"""
    CREATE TRIGGER IF NOT EXISTS audit_event_no_update BEFORE UPDATE ON {TABLE}
    WHEN NOT (OLD.seq IS NULL AND OLD.hash IS NULL
              AND NEW.seq IS NOT NULL AND NEW.hash IS NOT NULL AND NEW.prev_hash IS NOT NULL
              AND {_SQLITE_UNCHANGED})
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}: UPDATE refused'); END
    """,
    f"""
    CREATE TRIGGER IF NOT EXISTS audit_event_no_delete BEFORE DELETE ON {TABLE}
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}: DELETE refused'); END
    """,
]
SQLITE_UNINSTALL = [
    "DROP TRIGGER IF EXISTS audit_event_no_update",
    "DROP TRIGGER IF EXISTS audit_event_no_delete",
]


def _statements(vendor: str, install: bool) -> list[str]:
    if vendor == "postgresql":
        return POSTGRESQL_INSTALL if install else POSTGRESQL_UNINSTALL
    if vendor == "sqlite":
        return SQLITE_INSTALL if install else SQLITE_UNINSTALL
    raise NotImplementedError(f"no audit guard for the {vendor} database backend")


def install(connection=default_connection) -> None:
    with connection.cursor() as cursor:
        for statement in _statements(connection.vendor, install=True):
            cursor.execute(statement)


def uninstall(connection=default_connection) -> None:
    with connection.cursor() as cursor:
        for statement in _statements(connection.vendor, install=False):
            cursor.execute(statement)


def is_installed(connection=default_connection) -> bool:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgname = 'audit_event_append_only' AND tgenabled <> 'D'"
            )
            return cursor.fetchone()[0] == 1
        cursor.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN "
            "('audit_event_no_update', 'audit_event_no_delete')"
        )
        return cursor.fetchone()[0] == 2


@contextmanager
def suspended(connection=default_connection):
    """Remove the guard for the duration of the block, then put it back. Both databases
    treat these DDL statements transactionally, so run this inside a transaction: if the
    block fails, the rollback restores the guard as well."""
    if not connection.in_atomic_block:
        raise RuntimeError("suspend the audit guard only inside a transaction")
    uninstall(connection)
    yield
    install(connection)  # not in a ``finally``: after a failure the rollback restores it
