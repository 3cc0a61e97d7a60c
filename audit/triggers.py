"""The database's part of the audit trail: the guard that makes events and seals
append-only, and the queue that hands every new event to the sealer.

The guard refuses every UPDATE and DELETE of an event (``audit_auditevent``) and of a seal
(``audit_auditseal``), whoever asks, with an integrity error (PostgreSQL: a PL/pgSQL row
trigger raising ``restrict_violation``; SQLite: triggers that ``RAISE(ABORT, ...)``). An
event is never changed once written — its seal is a row of its own — so there is no write to
allow through.

The queue: an AFTER INSERT trigger on the events table writes one ``audit_auditpending``
row per new event in the same statement (PostgreSQL: once per statement, from its
transition table; SQLite: per row), so the ORM's saves, ``bulk_create``, the order fast
path's single statement and any raw INSERT are all queued without knowing it. The sealer
deletes the queue row in the transaction that appends the seal.

TRUNCATE is not guarded: Django's test runner empties tables with it between
transactional tests. Deployments that need that closed too run Bourse as a database role
that does not own the tables and lacks TRUNCATE and DELETE on the events and seals; the
chain anchors printed by ``audit_verify`` detect a truncated trail in any case.

The migrations call ``install``; tests that must tamper with a row on purpose (to prove
``audit_verify`` notices) use ``suspended``, inside their own transaction, which lifts the
guard and leaves the queue in place.
"""
from __future__ import annotations

from contextlib import contextmanager

from django.db import connection as default_connection

TABLE = "audit_auditevent"
SEALS = "audit_auditseal"
PENDING = "audit_auditpending"
MESSAGE = "audit events are append-only"

GUARDED = {TABLE: "audit_event_append_only", SEALS: "audit_seal_append_only"}

POSTGRESQL_GUARD = [
    f"""
    CREATE OR REPLACE FUNCTION audit_event_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{MESSAGE}: % refused on %', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'restrict_violation';
    END;
    $$
    """,
    *(statement for table, name in GUARDED.items() for statement in (
        f"DROP TRIGGER IF EXISTS {name} ON {table}",
        f"CREATE TRIGGER {name} BEFORE UPDATE OR DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION audit_event_guard()",
    )),
]
POSTGRESQL_UNGUARD = [
    *(f"DROP TRIGGER IF EXISTS {name} ON {table}" for table, name in GUARDED.items()),
    "DROP FUNCTION IF EXISTS audit_event_guard()",
]
POSTGRESQL_QUEUE = [
    f"""
    CREATE OR REPLACE FUNCTION audit_event_queue() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO {PENDING} (event_id) SELECT id FROM new_events;
        RETURN NULL;
    END;
    $$
    """,
    f"DROP TRIGGER IF EXISTS audit_event_queue ON {TABLE}",
    f"""
    CREATE TRIGGER audit_event_queue AFTER INSERT ON {TABLE} REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_queue()
    """,
]
POSTGRESQL_UNQUEUE = [
    f"DROP TRIGGER IF EXISTS audit_event_queue ON {TABLE}",
    "DROP FUNCTION IF EXISTS audit_event_queue()",
]

SQLITE_GUARD = [
    statement
    for table, name in GUARDED.items()
    for statement in (
        f"""
        CREATE TRIGGER IF NOT EXISTS {name}_update BEFORE UPDATE ON {table}
        BEGIN SELECT RAISE(ABORT, '{MESSAGE}: UPDATE refused on {table}'); END
        """,
        f"""
        CREATE TRIGGER IF NOT EXISTS {name}_delete BEFORE DELETE ON {table}
        BEGIN SELECT RAISE(ABORT, '{MESSAGE}: DELETE refused on {table}'); END
        """,
    )
]
SQLITE_UNGUARD = [
    f"DROP TRIGGER IF EXISTS {name}_{op}" for name in GUARDED.values() for op in ("update", "delete")
]
SQLITE_QUEUE = [
    f"""
    CREATE TRIGGER IF NOT EXISTS audit_event_queue AFTER INSERT ON {TABLE}
    BEGIN INSERT INTO {PENDING} (event_id) VALUES (NEW.id); END
    """,
]
SQLITE_UNQUEUE = ["DROP TRIGGER IF EXISTS audit_event_queue"]

_STATEMENTS = {
    ("postgresql", "guard"): POSTGRESQL_GUARD,
    ("postgresql", "unguard"): POSTGRESQL_UNGUARD,
    ("postgresql", "queue"): POSTGRESQL_QUEUE,
    ("postgresql", "unqueue"): POSTGRESQL_UNQUEUE,
    ("sqlite", "guard"): SQLITE_GUARD,
    ("sqlite", "unguard"): SQLITE_UNGUARD,
    ("sqlite", "queue"): SQLITE_QUEUE,
    ("sqlite", "unqueue"): SQLITE_UNQUEUE,
}


def _run(connection, *what: str) -> None:
    for name in what:
        try:
            statements = _STATEMENTS[(connection.vendor, name)]
        except KeyError:
            raise NotImplementedError(f"no audit triggers for the {connection.vendor} database backend") from None
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)


def install(connection=default_connection) -> None:
    """The guard on events and seals, and the queue (migration ``0005``)."""
    _run(connection, "guard", "queue")


def uninstall(connection=default_connection) -> None:
    _run(connection, "unqueue", "unguard")


def install_guard(connection=default_connection) -> None:
    _run(connection, "guard")


def uninstall_guard(connection=default_connection) -> None:
    _run(connection, "unguard")


def is_installed(connection=default_connection) -> bool:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgname = ANY(%s) AND tgenabled <> 'D'",
                [[*GUARDED.values(), "audit_event_queue"]],
            )
            return cursor.fetchone()[0] == len(GUARDED) + 1
        names = [f"{name}_{op}" for name in GUARDED.values() for op in ("update", "delete")] + ["audit_event_queue"]
        cursor.execute(
            f"SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN ({', '.join(['%s'] * len(names))})",
            names,
        )
        return cursor.fetchone()[0] == len(names)


@contextmanager
def suspended(connection=default_connection):
    """Lift the guard for the duration of the block, then put it back (the queue stays).
    Both databases treat these DDL statements transactionally, so run this inside a
    transaction: if the block fails, the rollback restores the guard as well."""
    if not connection.in_atomic_block:
        raise RuntimeError("suspend the audit guard only inside a transaction")
    uninstall_guard(connection)
    yield
    install_guard(connection)  # not in a ``finally``: after a failure the rollback restores it
