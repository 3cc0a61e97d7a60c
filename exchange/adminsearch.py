"""Console lists of the tables written per order (the audit trail, orders, fills, trades,
journals, ledger entries) that read indexes, not whole tables.

Django's admin turns ``search_fields`` into one OR of case-insensitive comparisons per term
(``UPPER(column) = UPPER(term)``, ``LIKE``), which no index serves: on a table written at the
order rate (the audit trail) every search, and every page of its results, reads the whole
table. An admin with this mixin says instead, per term, which indexed look-ups it means
(``search_conditions``): exact values, ids, and prefixes resolved first against a small
catalogue or table (an action's name, a username) into values the big table's indexes take.
Terms are ANDed, as Django's own search does.

A list page counts its rows for the paginator; an unfiltered list of such a table takes
PostgreSQL's estimate of the table's rows instead of counting them all on every page
(``EstimatedCountPaginator``), and no list counts the whole table beside a search's results
(``show_full_result_count``).

A term that cannot be a value at all (a control character, longer than
``MAX_TERM_LENGTH``) matches nothing and says why; at most ``MAX_TERMS`` terms are used.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Q
from django.utils.functional import cached_property
from django.utils.text import smart_split, unescape_string_literal

from .syntax import has_control

if TYPE_CHECKING:
    from django.db.models import Model, QuerySet
    from django.http import HttpRequest

MAX_TERMS = 8
MAX_TERM_LENGTH = 200
MAX_DISTINCT = 1000


def search_terms(search_term: str) -> list[str]:
    """The search box's terms, split as Django's admin splits them (quotes keep spaces)."""
    terms = []
    for bit in smart_split(search_term):
        if bit[:1] in ('"', "'") and len(bit) > 1 and bit[-1] == bit[0]:
            bit = unescape_string_literal(bit)
        if bit:
            terms.append(bit)
    return terms


def distinct_leading(model: type[Model], column: str) -> list[str]:
    """The distinct values of ``column``, which an index of ``model``'s table leads with, read
    as a loose index scan: one probe of the index per value, not a pass over the table (a
    ``SELECT DISTINCT`` would read every row). For columns that hold a few kinds of thing
    (an audit event's target type), so a look-up by the second column of that index can name
    them all."""
    table, name = connection.ops.quote_name(model._meta.db_table), connection.ops.quote_name(column)
    sql = (  # MIN(column) is one index probe on PostgreSQL and SQLite alike
        f"WITH RECURSIVE kinds(v) AS (SELECT MIN({name}) FROM {table} "
        f"UNION ALL SELECT (SELECT MIN({name}) FROM {table} WHERE {name} > kinds.v) FROM kinds WHERE kinds.v IS NOT NULL) "
        f"SELECT v FROM kinds WHERE v IS NOT NULL LIMIT {MAX_DISTINCT}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]


class EstimatedCountPaginator(Paginator):
    """On PostgreSQL, an unfiltered list's count is the table's estimated row count (kept by
    ANALYZE and autovacuum; "about", within a few percent on a table that only grows): a
    filtered list, and every list on SQLite, is counted exactly."""

    @cached_property
    def count(self) -> int:
        queryset: Any = self.object_list  # a QuerySet (the admin's list)
        if connection.vendor == "postgresql" and not queryset.query.where:
            with connection.cursor() as cursor:
                cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                               [queryset.model._meta.db_table])
                row = cursor.fetchone()
            if row is not None and row[0] >= 10_000:  # below that, counting is cheap and exact
                return int(row[0])
        return super().count


class LargeTableMixin:
    """A ``ModelAdmin`` mixin for a table written per order: ``search_conditions(term)``
    returns the OR of indexed look-ups one term means (the class keeps ``search_fields`` only
    so Django shows the search box; they are not used; the conditions join nothing, so results
    need no de-duplication), and lists are counted as ``EstimatedCountPaginator`` counts."""

    paginator: ClassVar[type] = EstimatedCountPaginator
    show_full_result_count = False  # no COUNT(*) of the whole table beside a search's results

    # Django shows the search box when ``search_fields`` is set; nothing reads the entry.
    search_fields: Any = ("see search_conditions",)

    def search_conditions(self, term: str) -> Q:  # pragma: no cover - every user overrides it
        raise NotImplementedError

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        terms = search_terms(search_term)
        if not terms:
            return queryset, False
        if len(terms) > MAX_TERMS:
            messages.warning(request, f"Only the first {MAX_TERMS} search terms were used.")
            terms = terms[:MAX_TERMS]
        for term in terms:
            if len(term) > MAX_TERM_LENGTH or has_control(term):
                messages.warning(request, f"A search term longer than {MAX_TERM_LENGTH} characters or with a "
                                          "control character cannot match anything.")
                return queryset.none(), False
            queryset = queryset.filter(self.search_conditions(term))
        return queryset, False
