"""The audit table is written at the order rate (each order's insert, then its seal's update,
which is never HOT): it carries the indexes its readers use and no more."""
import pytest
from django.db import connection, transaction

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


@pytest.mark.parametrize(("lookup", "index"), [
    ({"action": "order.submitted"}, "audit_action"),  # the console's action filter
    ({"request_id": "req-1"}, "audit_request_id"),  # the console's request links
])
def test_the_consoles_equality_look_ups_use_an_index(lookup, index):
    assert index in _plan(AuditEvent.objects.filter(**lookup).only("id"))


def test_no_pattern_copies_of_the_text_indexes():
    # db_index on a CharField adds a varchar_pattern_ops copy on PostgreSQL: written by every
    # order and every seal, and read by nothing
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL-only kind of index")
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [AuditEvent._meta.db_table])
        indexes = dict(cursor.fetchall())
    assert not [name for name, definition in indexes.items() if "pattern_ops" in definition], indexes
    assert len(indexes) == 9, sorted(indexes)
