"""Migration steps for the single-column indexes Django made for fields (``db_index``,
``unique`` and every ForeignKey's own): drop them, or give one a ``Meta.indexes`` name, once a
field no longer wants its own, without touching anything else.

Django's own ``AlterField`` to ``db_index=False`` drops and re-adds a foreign key's
constraint on PostgreSQL, which re-checks every row under a lock that holds up writes, and
rebuilds the whole table on SQLite. Dropping an index is all it takes: the migrations pair
this (as ``database_operations``) with the ``AlterField`` as ``state_operations``. On
PostgreSQL a varchar column's pattern copy (``…_like``) goes with it."""
from __future__ import annotations

from django.db import migrations


def _name(schema_editor, table: str, column: str, suffix: str = "") -> str:
    return schema_editor._create_index_name(table, [column], suffix=suffix)  # Django's own naming rule


def drop_column_indexes(table: str, columns: dict[str, bool]) -> migrations.RunPython:
    """``columns``: column name -> whether it is a varchar (it had a pattern copy on PostgreSQL)."""

    def forwards(apps, schema_editor):
        quote = schema_editor.quote_name
        for column in columns:
            for suffix in ("", "_like"):
                schema_editor.execute(f"DROP INDEX IF EXISTS {quote(_name(schema_editor, table, column, suffix))}")

    def backwards(apps, schema_editor):
        quote = schema_editor.quote_name
        postgresql = schema_editor.connection.vendor == "postgresql"
        for column, varchar in columns.items():
            schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {quote(_name(schema_editor, table, column))} "
                                  f"ON {quote(table)} ({quote(column)})")
            if varchar and postgresql:
                schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {quote(_name(schema_editor, table, column, '_like'))} "
                                      f"ON {quote(table)} ({quote(column)} varchar_pattern_ops)")

    return migrations.RunPython(forwards, backwards)


def rename_column_index(table: str, column: str, name: str) -> migrations.RunPython:
    """The plain index ``db_index`` made on a varchar ``column`` becomes the ``Meta.indexes``
    index ``name``: renamed in place on PostgreSQL (no rebuild) with its pattern copy dropped;
    recreated on SQLite (which has no ``ALTER INDEX … RENAME``)."""

    def forwards(apps, schema_editor):
        quote, old = schema_editor.quote_name, _name(schema_editor, table, column)
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"ALTER INDEX IF EXISTS {quote(old)} RENAME TO {quote(name)}")
            schema_editor.execute(f"DROP INDEX IF EXISTS {quote(_name(schema_editor, table, column, '_like'))}")
        else:
            schema_editor.execute(f"DROP INDEX IF EXISTS {quote(old)}")
            schema_editor.execute(f"CREATE INDEX {quote(name)} ON {quote(table)} ({quote(column)})")

    def backwards(apps, schema_editor):
        quote, old = schema_editor.quote_name, _name(schema_editor, table, column)
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"ALTER INDEX IF EXISTS {quote(name)} RENAME TO {quote(old)}")
            schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {quote(_name(schema_editor, table, column, '_like'))} "
                                  f"ON {quote(table)} ({quote(column)} varchar_pattern_ops)")
        else:
            schema_editor.execute(f"DROP INDEX IF EXISTS {quote(name)}")
            schema_editor.execute(f"CREATE INDEX {quote(old)} ON {quote(table)} ({quote(column)})")

    return migrations.RunPython(forwards, backwards)


def create_index_concurrently(schema_editor, name: str, table: str, definition: str) -> None:
    """``CREATE INDEX name ON table definition`` (``definition``: the columns and any ``WHERE``),
    built ``CONCURRENTLY`` on PostgreSQL so writes go on while it reads the table (the migration
    must be ``atomic = False``). A concurrent build that was interrupted — the migration killed,
    a lost connection, a deadlock — leaves an INVALID index of that name behind, which ``IF NOT
    EXISTS`` would then keep, unused by every query and still written by every insert; it is
    dropped first, so running the migration again builds the index."""
    quote = schema_editor.quote_name
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {quote(name)} ON {quote(table)} {definition}")
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [quote(name)])
        row = cursor.fetchone()
    if row is not None and row[0]:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {quote(name)}")
    schema_editor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {quote(name)} ON {quote(table)} {definition}")
