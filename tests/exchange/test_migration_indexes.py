"""Index migrations: a concurrent index build that was interrupted leaves an INVALID index
behind; running the migration again must build the index, not keep the broken one because
``IF NOT EXISTS`` found its name."""
import pytest
from django.db import connection

from exchange.migration_indexes import create_index_concurrently

pytestmark = pytest.mark.django_db(transaction=True)  # CONCURRENTLY cannot run in a transaction


def _valid(name: str):
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [f'"{name}"'])
            row = cursor.fetchone()
            return None if row is None else row[0]
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = %s", [name])
        return True if cursor.fetchone() else None


@pytest.fixture
def probe_table():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE migration_probe (a integer, b integer)")
        cursor.execute("INSERT INTO migration_probe VALUES (1, 1), (1, 2)")
    yield "migration_probe"
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS migration_probe")


def test_an_index_left_invalid_by_an_interrupted_build_is_built_again(probe_table):
    if connection.vendor != "postgresql":
        pytest.skip("INVALID indexes are PostgreSQL's (concurrent builds)")
    # A unique build over duplicates fails half-way, exactly as an interrupted build does:
    # the index's name exists, marked INVALID.
    with connection.cursor() as cursor, pytest.raises(Exception, match="could not create unique index"):
        cursor.execute(f"CREATE UNIQUE INDEX CONCURRENTLY probe_a ON {probe_table} (a)")
    assert _valid("probe_a") is False
    with connection.schema_editor(atomic=False) as editor:
        create_index_concurrently(editor, "probe_a", probe_table, "(a) WHERE b > 0")
    assert _valid("probe_a") is True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_indexdef(to_regclass('probe_a'))")
        assert "WHERE (b > 0)" in cursor.fetchone()[0]


def test_a_valid_index_is_kept_and_a_missing_one_is_built(probe_table):
    with connection.schema_editor(atomic=False) as editor:
        create_index_concurrently(editor, "probe_b", probe_table, "(b)")
        assert _valid("probe_b") is True
        create_index_concurrently(editor, "probe_b", probe_table, "(b)")  # again: nothing to do
    assert _valid("probe_b") is True
