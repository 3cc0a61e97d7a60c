"""Reconciliation: prove the ledger, record a report, log an error on any mismatch.

Checks:
1. ``balances_match_entries`` — every balance bucket equals the sum of its ledger entries.
2. ``assets_conserved`` — per asset, what all accounts hold equals deposits − withdrawals
   (the negated position of the ``external`` account).
3. ``nothing_negative`` — no balance bucket below zero (the database forbids it; proven anyway).
4. ``settlement_lag`` — no trade unsettled for longer than the lag budget.
5. ``locked_matches_orders`` — each account's locked amount equals what its orders still
   hold, and every open order whose fills are settled holds exactly what its remaining
   quantity needs.

All checks read ONE consistent snapshot of the database (``_snapshot``): a hold, a trade's
settlement or a deposit committing between two of their reads would otherwise make the
ledger look wrong when it is not (entries read before a journal, balances after it), and a
report must mean a real fault. The report is written after the snapshot is released.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts.models import Account, Balance, LedgerEntry
from exchange import metrics
from exchange.dbmath import decimal_sums

from . import pricing
from .models import Fill, Order, ReconciliationReport, Trade

log = logging.getLogger("bourse.reconciliation")
MAX_LISTED = 50  # mismatches listed per check in a report (the count is always exact)


def _check(name: str, mismatches: list) -> dict:
    return {"check": name, "ok": not mismatches, "count": len(mismatches), "mismatches": mismatches[:MAX_LISTED]}


def _balances_match_entries() -> dict:
    sums = decimal_sums(LedgerEntry.objects.all(), ("account_id", "asset_id", "bucket"), "amount")
    external = set(Account.objects.filter(system_role=Account.SystemRole.EXTERNAL).values_list("pk", flat=True))
    seen, mismatches = set(), []
    for balance in Balance.objects.all():
        for bucket in ("available", "locked"):
            key = (balance.account_id, balance.asset_id, bucket)
            seen.add(key)
            if getattr(balance, bucket) != sums[key]:
                mismatches.append(
                    {"account": balance.account_id, "asset": balance.asset_id, "bucket": bucket,
                     "balance": str(getattr(balance, bucket)), "entries": str(sums[key])}
                )
    for key, total in sums.items():
        if key not in seen and key[0] not in external and total != 0:
            mismatches.append({"account": key[0], "asset": key[1], "bucket": key[2], "balance": None, "entries": str(total)})
    return _check("balances_match_entries", mismatches)


def _assets_conserved() -> dict:
    held: defaultdict[str, Decimal] = defaultdict(Decimal)
    for bucket in ("available", "locked"):
        for (asset,), total in decimal_sums(Balance.objects.all(), ("asset_id",), bucket).items():
            held[asset] += total
    outside = defaultdict(Decimal)
    external = LedgerEntry.objects.filter(account__system_role=Account.SystemRole.EXTERNAL)
    for (asset,), total in decimal_sums(external, ("asset_id",), "amount").items():
        outside[asset] = -total
    mismatches = [
        {"asset": asset, "held": str(held[asset]), "deposits_minus_withdrawals": str(outside[asset])}
        for asset in sorted(set(held) | set(outside))
        if held[asset] != outside[asset]
    ]
    return _check("assets_conserved", mismatches)


def _nothing_negative() -> dict:
    rows = Balance.objects.filter(available__lt=0) | Balance.objects.filter(locked__lt=0)
    mismatches = [
        {"account": b.account_id, "asset": b.asset_id, "available": str(b.available), "locked": str(b.locked)}
        for b in rows
    ]
    return _check("nothing_negative", mismatches)


def _settlement_lag() -> dict:
    budget = timedelta(seconds=settings.BOURSE_SETTLEMENT_LAG_BUDGET_S)
    late = Trade.objects.filter(settled=False, created_at__lt=timezone.now() - budget).order_by("id")
    mismatches = [{"trade": t.pk, "market": t.market_id, "created_at": t.created_at.isoformat()} for t in late[:MAX_LISTED]]
    count = late.count()
    check = _check("settlement_lag", mismatches)
    check.update(ok=count == 0, count=count)
    return check


def _locked_matches_orders() -> dict:
    held = decimal_sums(Order.objects.filter(close_settled=False), ("account_id", "hold_asset_id"), "hold_remaining")
    mismatches = []
    for balance in Balance.objects.filter(account__kind=Account.Kind.TRADER):
        expected = held.pop((balance.account_id, balance.asset_id), Decimal(0))
        if balance.locked != expected:
            mismatches.append(
                {"account": balance.account_id, "asset": balance.asset_id, "locked": str(balance.locked), "orders_hold": str(expected)}
            )
    for (account_id, asset), total in held.items():
        if total:
            mismatches.append({"account": account_id, "asset": asset, "locked": "0", "orders_hold": str(total)})
    unsettled = Fill.objects.filter(order=OuterRef("pk"), settled=False)
    settled_open = (
        Order.objects.filter(status__in=Order.OPEN_STATUSES, hold_review=False)  # under review: settling
        .exclude(Exists(unsettled))
        .select_related("market__base", "market__quote")
    )
    for order in settled_open.iterator(chunk_size=2000):
        need = pricing.required_hold(order, order.quantity - order.filled_quantity)
        if order.hold_remaining != need:
            mismatches.append({"order": order.pk, "hold_remaining": str(order.hold_remaining), "needs": str(need)})
    return _check("locked_matches_orders", mismatches)


CHECKS = (_balances_match_entries, _assets_conserved, _nothing_negative, _settlement_lag, _locked_matches_orders)


@contextmanager
def _snapshot():
    """Every query inside reads the same committed state, taking no lock and blocking no
    writer. PostgreSQL: one ``REPEATABLE READ, READ ONLY`` transaction (its snapshot is taken
    at the first query). SQLite (WAL): one deferred read transaction, whose snapshot likewise
    lasts until it ends — opened by hand, since Django's transactions there are IMMEDIATE and
    would take the database's write lock for the whole run."""
    if connection.vendor == "postgresql":
        with transaction.atomic(durable=True):
            if len(connection.atomic_blocks) == 1:  # our own transaction (a test may wrap us)
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield
        return
    if connection.in_atomic_block:  # a test's wrapping transaction: already one snapshot
        yield
        return
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("BEGIN DEFERRED")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("COMMIT")  # nothing was written: this only ends the snapshot


def reconciliation_run(progress: Callable[[dict, float], None] | None = None) -> ReconciliationReport:
    """Run every check on one consistent snapshot, store the report, and log an error for
    each failed check. ``progress(result, seconds)`` hears of each check as it finishes."""
    started_at = timezone.now()
    results = []
    with _snapshot():
        for check in CHECKS:
            began = time.monotonic()
            results.append(check())
            if progress is not None:
                progress(results[-1], time.monotonic() - began)
    report = ReconciliationReport.objects.create()
    ReconciliationReport.objects.filter(pk=report.pk).update(started_at=started_at)
    report.started_at = started_at
    report.checks = results
    report.mismatches = sum(r["count"] for r in results)
    report.ok = report.mismatches == 0
    report.finished_at = timezone.now()
    report.save(update_fields=["checks", "mismatches", "ok", "finished_at"])
    metrics.RECONCILIATION_RUNS.labels("ok" if report.ok else "mismatch").inc()
    for result in results:
        if not result["ok"]:
            log.error(
                "reconciliation mismatch",
                extra={"report": report.pk, "check": result["check"], "count": result["count"],
                       "sample": result["mismatches"][:5]},
            )
    return report
