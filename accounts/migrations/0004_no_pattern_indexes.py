"""The journal's ``reference`` index and ``idempotency_key`` uniqueness without the
``varchar_pattern_ops`` copies ``db_index`` and ``unique`` add to a CharField on PostgreSQL.

A journal is written for every order (its hold), every trade and every close; nothing runs
LIKE on these columns. On PostgreSQL the index and the unique constraint are renamed in place
(no rebuild: an index build on a large table would hold up every posting) and the pattern
copies dropped. SQLite has no pattern copy: its ``reference`` index is recreated under the new
name, and its uniqueness stays the table's own (SQLite cannot drop it without rebuilding the
table; it enforces the same rule)."""
from django.db import migrations, models

TABLE = "accounts_journal"


def _name(schema_editor, column: str, suffix: str = "") -> str:
    # The name ``db_index``/``unique`` gave the index in 0001 (Django's own naming rule).
    return schema_editor._create_index_name(TABLE, [column], suffix=suffix)


def _unique_constraint(schema_editor) -> str | None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.conname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid "
            "AND a.attnum = ANY(c.conkey) WHERE c.conrelid = %s::regclass AND c.contype = 'u' "
            "AND array_length(c.conkey, 1) = 1 AND a.attname = 'idempotency_key'", [TABLE])
        row = cursor.fetchone()
    return row[0] if row else None


def forwards(apps, schema_editor):
    quote = schema_editor.quote_name
    old = _name(schema_editor, "reference")
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {quote(old)}")
        schema_editor.execute(f"CREATE INDEX {quote('journal_reference')} ON {quote(TABLE)} ({quote('reference')})")
        return
    schema_editor.execute(f"ALTER INDEX IF EXISTS {quote(old)} RENAME TO {quote('journal_reference')}")
    schema_editor.execute(f"DROP INDEX IF EXISTS {quote(_name(schema_editor, 'reference', '_like'))}")
    unique = _unique_constraint(schema_editor)
    if unique is not None and unique != "journal_idempotency_key":
        schema_editor.execute(f"ALTER TABLE {quote(TABLE)} RENAME CONSTRAINT {quote(unique)} "
                              f"TO {quote('journal_idempotency_key')}")
    schema_editor.execute(f"DROP INDEX IF EXISTS {quote(_name(schema_editor, 'idempotency_key', '_like'))}")


def backwards(apps, schema_editor):
    quote = schema_editor.quote_name
    old = _name(schema_editor, "reference")
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {quote('journal_reference')}")
        schema_editor.execute(f"CREATE INDEX {quote(old)} ON {quote(TABLE)} ({quote('reference')})")
        return
    schema_editor.execute(f"ALTER INDEX IF EXISTS {quote('journal_reference')} RENAME TO {quote(old)}")
    schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {quote(_name(schema_editor, 'reference', '_like'))} "
                          f"ON {quote(TABLE)} ({quote('reference')} varchar_pattern_ops)")
    schema_editor.execute(f"ALTER TABLE {quote(TABLE)} RENAME CONSTRAINT {quote('journal_idempotency_key')} "
                          f"TO {quote(TABLE + '_idempotency_key_key')}")
    schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {quote(_name(schema_editor, 'idempotency_key', '_like'))} "
                          f"ON {quote(TABLE)} ({quote('idempotency_key')} varchar_pattern_ops)")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_asset_code_anchored")]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField("journal", "reference", models.CharField(blank=True, max_length=100)),
                migrations.AlterField("journal", "idempotency_key",
                                      models.CharField(blank=True, max_length=100, null=True)),
                migrations.AddIndex("journal", models.Index(fields=["reference"], name="journal_reference")),
                migrations.AddConstraint("journal", models.UniqueConstraint(fields=["idempotency_key"],
                                                                            name="journal_idempotency_key")),
            ],
            database_operations=[migrations.RunPython(forwards, backwards)],
        ),
    ]
