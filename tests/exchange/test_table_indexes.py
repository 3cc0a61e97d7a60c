"""The tables written at the order rate carry the indexes their readers use and no more: the
audit table (each order's insert, then its seal's update, which is never HOT) and the journal
(every order's hold, every trade and close)."""
import pytest
from django.db import connection, transaction

from accounts.models import Journal
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def _plan(queryset) -> str:
    sql, params = queryset.query.get_compiler("default").as_sql()
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")  # an empty table: only a missing index scans it
            cursor.execute(f"EXPLAIN {sql}", params)
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return "\n".join(str(row[-1]) for row in cursor.fetchall())


@pytest.mark.parametrize(("model", "lookup"), [
    (AuditEvent, {"action": "order.submitted"}),  # the console's action filter
    (AuditEvent, {"request_id": "req-1"}),  # the console's request links
    (Journal, {"reference": "order:1"}),
    (Journal, {"idempotency_key": "trade:1"}),  # the duplicate check
])
def test_equality_look_ups_use_an_index(model, lookup):
    plan = _plan(model.objects.filter(**lookup).only("id"))
    if connection.vendor == "postgresql":
        assert "Index" in plan and "Seq Scan" not in plan, plan
    else:
        assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan


HOT_TABLES = ("audit_auditevent", "accounts_journal", "accounts_ledgerentry", "trading_order", "trading_command",
              "trading_trade", "trading_fill", "trading_outboxevent")


def test_no_pattern_copies_on_the_tables_written_per_order():
    # db_index or unique on a CharField adds a varchar_pattern_ops copy on PostgreSQL: written
    # with every row, read only by LIKE, which no query of Bourse runs on these tables
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL-only kind of index")
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename, indexname FROM pg_indexes WHERE tablename = ANY(%s) "
                       "AND indexdef LIKE %s", [list(HOT_TABLES), "%pattern_ops%"])
        assert cursor.fetchall() == []
        cursor.execute("SELECT count(*) FROM pg_indexes WHERE tablename = ANY(%s)", [list(HOT_TABLES)])
        assert cursor.fetchone()[0] > len(HOT_TABLES)  # the tables were found



def test_no_index_on_those_tables_repeats_the_start_of_another():
    # A foreign key's own index beside a composite index leading with the same column (Django
    # makes one for every ForeignKey unless db_index=False) is written with every row and read
    # by nothing the composite does not serve
    if connection.vendor != "postgresql":
        pytest.skip("read from PostgreSQL's catalog")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.relname, i.relname, x.indkey::int2[], x.indisunique, x.indpred IS NOT NULL "
            "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
            "WHERE t.relname = ANY(%s)", [list(HOT_TABLES)])
        rows = cursor.fetchall()
    plain = [(table, name, list(columns)) for table, name, columns, unique, partial in rows if not unique and not partial]
    covering = [(table, name, list(columns)) for table, name, columns, _unique, partial in rows if not partial]
    repeated = [
        (name, other) for table, name, columns in plain for other_table, other, longer in covering
        if other_table == table and other != name and len(longer) > len(columns) and longer[:len(columns)] == columns
    ]
    assert repeated == []
    assert len(plain) > len(HOT_TABLES)  # the catalog was read
