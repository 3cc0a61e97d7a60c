"""The first guard of the audit table (migrations 0002 to 0004), frozen here so those
migrations keep meaning what they meant: it allowed one UPDATE — the sealer's one-time write
of the seal columns ``seq``, ``prev_hash``, ``hash`` and ``sealed_at``, which were columns of
the event then — and refused every other UPDATE and every DELETE. Migration 0005 moved the
seal to a table of its own and replaced this guard with ``audit.triggers``; it puts this one
back when migrated backwards. (The migration loader skips modules whose name starts with
``_``.)"""

TABLE = "audit_auditevent"
MESSAGE = "audit events are append-only"
CONTENT = ("id", "created_at", "actor_type", "actor_id", "actor_label", "action", "target_type", "target_id",
           "account_id", "before", "after", "outcome", "reason", "source_ip", "request_id")
_PG_UNCHANGED = " AND ".join(f"NEW.{c} IS NOT DISTINCT FROM OLD.{c}" for c in CONTENT)
_SQLITE_UNCHANGED = " AND ".join(f"NEW.{c} IS OLD.{c}" for c in CONTENT)

INSTALL = {
    "postgresql": [
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
        f"CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
        f"FOR EACH ROW EXECUTE FUNCTION audit_event_guard()",
    ],
    "sqlite": [
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
    ],
}
UNINSTALL = {
    "postgresql": [f"DROP TRIGGER IF EXISTS audit_event_append_only ON {TABLE}", "DROP FUNCTION IF EXISTS audit_event_guard()"],
    "sqlite": ["DROP TRIGGER IF EXISTS audit_event_no_update", "DROP TRIGGER IF EXISTS audit_event_no_delete"],
}


def _run(statements, schema_editor) -> None:
    with schema_editor.connection.cursor() as cursor:  # no parameters: the PL/pgSQL's % stay as written
        for statement in statements[schema_editor.connection.vendor]:
            cursor.execute(statement)


def install(apps, schema_editor) -> None:
    _run(INSTALL, schema_editor)


def uninstall(apps, schema_editor) -> None:
    _run(UNINSTALL, schema_editor)
