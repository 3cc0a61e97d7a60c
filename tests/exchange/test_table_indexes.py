"""The tables written at the order rate carry the indexes their readers use and no more: the
audit tables (each order's event, its queue row and its seal) and the journal (every order's
hold, every trade and close)."""
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts.models import Journal
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def _plan(queryset) -> str:
    return _plan_of(*queryset.query.get_compiler("default").as_sql())


def _plan_of(sql: str, params=(), *, seqscan: bool = False) -> str:
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            if not seqscan:
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
    (Journal, {"created_by_id": 1}),  # the user's foreign key (PROTECT)
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



def test_an_orders_hold_journal_enters_no_index_of_a_column_it_leaves_null():
    # every order writes a journal without an idempotency key or an operator: indexes of those
    # columns leave NULL out (an equality look-up, above, still uses them)
    if connection.vendor != "postgresql":
        pytest.skip("read from PostgreSQL's catalog")
    with connection.cursor() as cursor:
        cursor.execute("SELECT i.relname, pg_get_expr(x.indpred, x.indrelid) FROM pg_index x "
                       "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = 'accounts_journal'::regclass "
                       "AND x.indkey[0] IN (SELECT attnum FROM pg_attribute WHERE attrelid = 'accounts_journal'::regclass "
                       "AND attname IN ('idempotency_key', 'created_by_id'))")
        assert sorted(cursor.fetchall()) == [("journal_created_by", "(created_by_id IS NOT NULL)"),
                                             ("journal_idempotency_key", "(idempotency_key IS NOT NULL)")]


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


def test_settlements_checks_read_only_the_orders_still_to_settle(market):
    # market_id = … AND status IN (closed) AND NOT close_settled: with no index stopping at the
    # orders still to settle, each check read the market's whole history of closed orders
    from tests.factories import AccountFactory
    from tests.support import fund
    from trading import settlement
    from trading.models import Order
    from trading.services import order_submit

    if connection.vendor != "postgresql":
        pytest.skip("the plan is PostgreSQL's (SQLite's embedded mode keeps small tables)")
    account = AccountFactory()
    fund(account, USD="1000")
    order_submit(account=account, market=market.symbol, side="buy", type="limit", price="1.00", quantity="1")
    table = Order._meta.db_table
    columns = ", ".join(f'"{f.column}"' for f in Order._meta.concrete_fields if not f.primary_key
                        and f.column not in ("status", "close_settled", "client_order_id"))
    with connection.cursor() as cursor:
        for status, settled, copies in (("filled", True, 3000), ("cancelled", False, 3)):
            cursor.execute(f"INSERT INTO {table} ({columns}, status, close_settled) SELECT {columns}, %s, %s "
                           f"FROM {table}, generate_series(1, %s) WHERE id = (SELECT min(id) FROM {table})",
                           [status, settled, copies])
        cursor.execute(f"ANALYZE {table}")
    with CaptureQueriesContext(connection) as queries:
        assert settlement._due(market.pk)[1]
    # the planner's own choice on analysed data: without an index holding exactly these rows it
    # reads the table (it cannot know closed orders are nearly all settled)
    plan = _plan_of(queries.captured_queries[-1]["sql"], seqscan=True)
    assert "order_close_due" in plan, plan
    assert Order.CLOSED_STATUSES == ("filled", "cancelled", "rejected")  # the index's predicate
