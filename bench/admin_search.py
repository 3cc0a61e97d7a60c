"""Console searches of the tables written per order: Django's own search (the admins'
``search_fields`` before ``exchange/adminsearch.py``) against the indexed search, same
database, same terms. Prints, per admin and term, the planning + execution time of the list's
query (EXPLAIN ANALYZE, best of three) and the rows it returned, and the ratio. Needs a
database with history, e.g. the benchmarks' own after a few runs of ``make bench``:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bourse_bench BOURSE_ALLOW_GENERATED_SECRETS=1 \\
      BOURSE_DATA_DIR=var/bench LOG_LEVEL=WARNING .venv/bin/python bench/admin_search.py

(The indexed search's look-ups that resolve a term first — the accounts a term names, the
orders with a client order id, the target types of the trail — run as separate statements
and are not in its figure; each is an index probe or a read of the accounts table.)
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")

import django  # noqa: E402

django.setup()

from django.contrib import admin  # noqa: E402
from django.contrib.auth.models import AnonymousUser  # noqa: E402
from django.core.exceptions import EmptyResultSet  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import RequestFactory  # noqa: E402

from accounts.models import Journal, LedgerEntry  # noqa: E402
from audit.models import AuditEvent  # noqa: E402
from trading.models import Fill, Order, Trade  # noqa: E402

# Django's search as the admins declared it before (case-insensitive comparisons, LIKE).
DJANGO_SEARCH = {
    AuditEvent: ("=request_id", "=actor_id", "^actor_label", "^action", "=target_id", "=target_type", "=account_id"),
    Order: ("=id", "client_order_id", "=account__id", "account__name", "account__owner__username"),
    Fill: ("=id", "=order__id", "order__client_order_id", "=account__id", "account__name"),
    Trade: ("=id", "=taker_order__id", "=maker_order__id"),
    Journal: ("=id", "reference", "reason", "idempotency_key"),
    LedgerEntry: ("=account__id", "account__name", "reference", "=journal__id"),
}


def one(sql: str):
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()


def terms() -> dict[type, list[tuple[str, str]]]:
    request_id, key_id = one("SELECT request_id, actor_id FROM audit_auditevent WHERE request_id <> '' "
                             "AND actor_type = 'apikey' ORDER BY id DESC LIMIT 1")
    order_id, account_id = one("SELECT id, account_id FROM trading_order ORDER BY id DESC LIMIT 1")
    reference = one("SELECT reference FROM accounts_journal WHERE reference <> '' ORDER BY id DESC LIMIT 1")[0]
    absent = ("an absent value", "no-such-thing")
    return {
        AuditEvent: [("a request id", request_id), ("a key id", key_id), ("an action prefix", "market."), absent],
        Order: [("an order id", str(order_id)), ("an account id", str(account_id)), absent],
        Fill: [("an order id", str(order_id)), absent],
        Trade: [("an order id", str(order_id)), absent],
        Journal: [("a reference", reference), absent],
        LedgerEntry: [("a reference", reference), ("an account id", str(account_id)), absent],
    }


def timed(model_admin, model, term: str) -> tuple[float, int]:
    request = RequestFactory().get("/")
    request.user = AnonymousUser()
    queryset, _ = model_admin.get_search_results(request, model.objects.order_by("-pk"), term)
    try:
        sql, params = queryset[:101].query.sql_with_params()
    except EmptyResultSet:  # nothing can match: Django runs no statement
        return 0.0, 0
    best, rows = None, 0
    for _ in range(3):
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
            plan = cursor.fetchone()[0]
        plan = json.loads(plan) if isinstance(plan, str) else plan
        ms = plan[0]["Execution Time"] + plan[0]["Planning Time"]
        best, rows = (ms if best is None else min(best, ms)), plan[0]["Plan"]["Actual Rows"]
    return best, rows


def main() -> None:
    if connection.vendor != "postgresql":
        raise SystemExit("reads PostgreSQL's plans: set DATABASE_URL")
    print(f"load average {Path('/proc/loadavg').read_text().split()[0]}")
    for model, cases in terms().items():
        count = one(f"SELECT count(*) FROM {model._meta.db_table}")[0]
        django_admin = type("DjangoSearch", (admin.ModelAdmin,), {"search_fields": DJANGO_SEARCH[model]})(model, admin.site)
        indexed = admin.site._registry[model]
        for label, term in cases:
            before, before_rows = timed(django_admin, model, term)
            after, after_rows = timed(indexed, model, term)
            print(f"{model._meta.db_table:22} ({count:>7} rows) {label:17} Django's search {before:8.2f} ms "
                  f"({before_rows:>3} rows)  indexed {after:6.2f} ms ({after_rows:>3} rows)  ratio {after / before:.4f}")


if __name__ == "__main__":
    main()
