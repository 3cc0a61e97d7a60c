"""``action`` and ``request_id`` keep one plain index each instead of ``db_index``'s pair.

On PostgreSQL, ``db_index`` on a CharField also builds a ``varchar_pattern_ops`` index for
LIKE, which no query of Bourse runs on this table; both copies were written by every order's
audit insert and again by its seal. The plain indexes are renamed in place (no rebuild: an
index build on a large audit table would hold up every audited write) and the pattern copies
dropped. SQLite has no pattern copy; its indexes are recreated under the new names (the
embedded mode's tables are small)."""
from django.db import migrations, models

TABLE = "audit_auditevent"
RENAMES = (("action", "audit_action"), ("request_id", "audit_request_id"))


def _old_name(schema_editor, column: str, suffix: str = "") -> str:
    # The name ``db_index`` gave the index in 0001 (Django's own naming rule).
    return schema_editor._create_index_name(TABLE, [column], suffix=suffix)


def forwards(apps, schema_editor):
    quote = schema_editor.quote_name
    for column, name in RENAMES:
        old = _old_name(schema_editor, column)
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"ALTER INDEX IF EXISTS {quote(old)} RENAME TO {quote(name)}")
            schema_editor.execute(f"DROP INDEX IF EXISTS {quote(_old_name(schema_editor, column, '_like'))}")
        else:
            schema_editor.execute(f"DROP INDEX IF EXISTS {quote(old)}")
            schema_editor.execute(f"CREATE INDEX {quote(name)} ON {quote(TABLE)} ({quote(column)})")


def backwards(apps, schema_editor):
    quote = schema_editor.quote_name
    for column, name in RENAMES:
        old = _old_name(schema_editor, column)
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"ALTER INDEX IF EXISTS {quote(name)} RENAME TO {quote(old)}")
            schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {quote(_old_name(schema_editor, column, '_like'))} "
                                  f"ON {quote(TABLE)} ({quote(column)} varchar_pattern_ops)")
        else:
            schema_editor.execute(f"DROP INDEX IF EXISTS {quote(name)}")
            schema_editor.execute(f"CREATE INDEX {quote(old)} ON {quote(TABLE)} ({quote(column)})")


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_roles")]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField("auditevent", "action", models.CharField(max_length=64)),
                migrations.AlterField("auditevent", "request_id", models.CharField(blank=True, max_length=128)),
                migrations.AddIndex("auditevent", models.Index(fields=["action"], name="audit_action")),
                migrations.AddIndex("auditevent", models.Index(fields=["request_id"], name="audit_request_id")),
            ],
            database_operations=[migrations.RunPython(forwards, backwards)],
        ),
    ]
