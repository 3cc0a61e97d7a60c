"""The journal's ``reference`` index and ``idempotency_key`` uniqueness without the
``varchar_pattern_ops`` copies ``db_index`` and ``unique`` add to a CharField on PostgreSQL.

A journal is written for every order (its hold), every trade and every close; nothing runs
LIKE on these columns. On PostgreSQL the index and the unique constraint are renamed in place
(no rebuild: an index build on a large table would hold up every posting) and the pattern
copies dropped. SQLite has no pattern copy: its ``reference`` index is recreated under the new
name, and its uniqueness stays the table's own (SQLite cannot drop it without rebuilding the
table; it enforces the same rule)."""
from django.db import migrations, models

from exchange.migration_indexes import rename_column_index

TABLE = "accounts_journal"


def _unique_constraint(schema_editor) -> str | None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.conname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid "
            "AND a.attnum = ANY(c.conkey) WHERE c.conrelid = %s::regclass AND c.contype = 'u' "
            "AND array_length(c.conkey, 1) = 1 AND a.attname = 'idempotency_key'", [TABLE])
        row = cursor.fetchone()
    return row[0] if row else None


def unique_forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite: the table's own uniqueness stays (see above)
    quote = schema_editor.quote_name
    unique = _unique_constraint(schema_editor)
    if unique is not None and unique != "journal_idempotency_key":
        schema_editor.execute(f"ALTER TABLE {quote(TABLE)} RENAME CONSTRAINT {quote(unique)} "
                              f"TO {quote('journal_idempotency_key')}")
    like = schema_editor._create_index_name(TABLE, ["idempotency_key"], suffix="_like")  # Django's naming rule
    schema_editor.execute(f"DROP INDEX IF EXISTS {quote(like)}")


def unique_backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    schema_editor.execute(f"ALTER TABLE {quote(TABLE)} RENAME CONSTRAINT {quote('journal_idempotency_key')} "
                          f"TO {quote(TABLE + '_idempotency_key_key')}")
    like = schema_editor._create_index_name(TABLE, ["idempotency_key"], suffix="_like")
    schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {quote(like)} ON {quote(TABLE)} ({quote('idempotency_key')} varchar_pattern_ops)")


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
            database_operations=[
                rename_column_index(TABLE, "reference", "journal_reference"),
                migrations.RunPython(unique_forwards, unique_backwards),
            ],
        ),
    ]
