"""The console's lists of the tables written per order read indexes: every registered admin of
such a table searches through ``LargeTableMixin`` (exact and resolved look-ups), and every
statement a search runs has an index path on those tables (with sequential scans priced out,
PostgreSQL still plans one where no index serves — Django's own search compared
``UPPER(column)`` and did)."""
import json

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.test.utils import CaptureQueriesContext

from exchange.adminsearch import EstimatedCountPaginator, LargeTableMixin, search_terms
from tests.exchange.test_table_indexes import HOT_TABLES
from tests.factories import AccountFactory

pytestmark = pytest.mark.django_db

# Written per order, but not in the console: the engine's queue and the outbox.
NOT_IN_THE_CONSOLE = {"trading_command", "trading_outboxevent"}
TERMS = ["42", "acme", "bk_Q1w2e3", "order:42", "req-0f3a", "ops-", "market.", "99999999999999999999"]


def large_table_admins():
    return [model_admin for model, model_admin in admin.site._registry.items()
            if model._meta.db_table in HOT_TABLES]


def test_every_admin_of_a_table_written_per_order_searches_by_index():
    admins = large_table_admins()
    assert {a.model._meta.db_table for a in admins} == set(HOT_TABLES) - NOT_IN_THE_CONSOLE
    for model_admin in admins:
        assert isinstance(model_admin, LargeTableMixin), type(model_admin).__name__
        assert model_admin.show_full_result_count is False
        assert model_admin.paginator is EstimatedCountPaginator
        assert not model_admin.date_hierarchy  # its links read the distinct dates of every row


@pytest.mark.skipif(connection.vendor != "postgresql", reason="reads PostgreSQL's plans")
@pytest.mark.parametrize("model_admin", large_table_admins(), ids=lambda a: a.model._meta.db_table)
def test_every_statement_of_a_search_has_an_index_path(model_admin, rf):
    owner = get_user_model().objects.create_user("ops-acme", email="acme@example.com")
    AccountFactory(name="acme desk", owner=owner)
    request = rf.get("/")
    request.user = owner
    for term in TERMS:
        with CaptureQueriesContext(connection) as resolving:
            queryset, duplicates = model_admin.get_search_results(request, model_admin.get_queryset(request), term)
        assert duplicates is False
        statements = [(q["sql"], None) for q in resolving.captured_queries]
        try:
            # The WHERE alone (no order, no limit): whether an index bounds it. With an order and
            # a limit the planner may rightly walk the primary key when it expects matches to be
            # dense; that choice is checked on real data in tests/audit/test_admin.py.
            statements.append(queryset.order_by().query.sql_with_params())
        except EmptyResultSet:  # nothing can match: Django runs no statement
            pass
        for sql, params in statements:
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL enable_seqscan = off")
                cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
                plan = cursor.fetchone()[0]
                cursor.execute("RESET enable_seqscan")
            plan = json.loads(plan) if isinstance(plan, str) else plan
            assert not whole_table_reads(plan[0]["Plan"]), (term, sql, plan)


def whole_table_reads(node) -> list[str]:
    """The plan's reads of a table written per order that are not bounded by an index
    condition: a sequential scan, or a walk of a whole index filtering every row."""
    found = []
    if node.get("Relation Name") in HOT_TABLES and (
        node["Node Type"] == "Seq Scan"
        or (node["Node Type"] in ("Index Scan", "Index Only Scan") and "Index Cond" not in node)
    ):
        found.append(f"{node['Node Type']} on {node['Relation Name']}")
    for child in node.get("Plans", []):
        found.extend(whole_table_reads(child))
    return found


def test_terms_split_as_djangos_search_splits_them():
    assert search_terms('  req-1  "two words" \'x y\' ') == ["req-1", "two words", "x y"]
    assert search_terms("") == [] and search_terms('""') == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's estimate")
def test_an_unfiltered_list_of_a_large_table_takes_the_estimate_and_a_filtered_one_counts(monkeypatch):
    from audit.models import AuditEvent
    from audit.services import audit_record

    for _ in range(3):
        audit_record("account.created", target=("accounts.account", 1))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audit_auditevent")
    assert EstimatedCountPaginator(AuditEvent.objects.all(), 100).count == AuditEvent.objects.count()  # small: exact
    monkeypatch.setattr("exchange.adminsearch.connection.cursor", _reltuples(2_000_000))
    assert EstimatedCountPaginator(AuditEvent.objects.all(), 100).count == 2_000_000
    monkeypatch.undo()
    filtered = AuditEvent.objects.filter(action="account.created")
    assert EstimatedCountPaginator(filtered, 100).count == filtered.count()


def _reltuples(value):
    class Cursor:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def execute(self, sql, params):
            assert "reltuples" in sql and params == ["audit_auditevent"]

        def fetchone(self):
            return (value,)

    return lambda: Cursor()
