"""The invariants the chaos suite proves after each fault, read inside a Django process of
the deployment under test (``Stack.check``). The harness writes ``CHAOS_STATE`` (a JSON file):
the orders the clients saw acknowledged and the per-asset balance totals after seeding. Then
``reconcile`` and ``audit_verify`` run as commands. The result is one JSON line: ``problems``
(empty when every invariant holds and both commands pass) and some counts.
"""
from __future__ import annotations

import io
import json
import os
import time
from decimal import Decimal
from pathlib import Path

DRAIN_TIMEOUT_S = 90.0


def main() -> None:
    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.db.models import Count, Sum

    from accounts.models import Balance
    from trading.models import Command, Fill, Order, Trade

    state = json.loads(Path(os.environ["CHAOS_STATE"]).read_text())
    problems: list[str] = []

    # The engine and settlement catch up by themselves (bounded): nothing pending stays.
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        waiting = Command.objects.filter(processed=False).count()
        unsettled = Trade.objects.filter(settled=False).count()
        if not waiting and not unsettled:
            break
        time.sleep(0.5)
    else:
        problems.append(f"not drained within {DRAIN_TIMEOUT_S:.0f}s: {waiting} unprocessed command(s), "
                        f"{unsettled} unsettled trade(s)")

    # Every acknowledged order exists, once, with the engine's verdict.
    acked = {(int(account), cid) for account, cid in state["acked"]}
    found = {(o["account_id"], o["client_order_id"]): o["status"]
             for o in Order.objects.filter(client_order_id__in={cid for _, cid in acked})
             .values("account_id", "client_order_id", "status")}
    missing = sorted(acked - found.keys())
    if missing:
        problems.append(f"{len(missing)} acknowledged order(s) missing, e.g. {missing[:5]}")
    pending = sorted(key for key in acked if found.get(key) == Order.Status.PENDING)
    if pending:
        problems.append(f"{len(pending)} acknowledged order(s) still pending, e.g. {pending[:5]}")

    # No fill duplicated: two fills per trade (taker and maker), one per (order, trade), and an
    # order's fills add up to its filled quantity, never beyond its quantity.
    odd = list(Fill.objects.values("trade_id").annotate(n=Count("id")).exclude(n=2).values_list("trade_id", "n")[:5])
    if odd:
        problems.append(f"trades without exactly two fills: {odd}")
    doubled = list(Fill.objects.values("order_id", "trade_id").annotate(n=Count("id")).filter(n__gt=1)[:5])
    if doubled:
        problems.append(f"duplicated fills: {doubled}")
    sums = dict(Fill.objects.values_list("order_id").annotate(q=Sum("quantity")).values_list("order_id", "q"))
    for order in Order.objects.exclude(filled_quantity=0).only("id", "quantity", "filled_quantity"):
        if sums.get(order.pk, Decimal(0)) != order.filled_quantity:
            problems.append(f"order {order.pk}: fills {sums.get(order.pk)} != filled {order.filled_quantity}")
            break
        if order.quantity is not None and order.filled_quantity > order.quantity:
            problems.append(f"order {order.pk} overfilled: {order.filled_quantity} > {order.quantity}")
            break

    # Balances: per-asset totals conserved, none negative.
    totals = {asset: str(total) for asset, total in
              Balance.objects.values_list("asset_id").annotate(t=Sum("available") + Sum("locked")).values_list("asset_id", "t")}
    expected = state.get("totals")
    if expected is not None and {a: Decimal(v) for a, v in totals.items()} != {a: Decimal(v) for a, v in expected.items()}:
        problems.append(f"per-asset balance totals changed: {expected} -> {totals}")
    negative = Balance.objects.filter(available__lt=0).count() + Balance.objects.filter(locked__lt=0).count()
    if negative:
        problems.append(f"{negative} negative balance(s)")

    # The operator's proofs, as `manage.py reconcile` and `manage.py audit_verify` run them
    # (in this process: a Django start-up less per check).
    for command in ("reconcile", "audit_verify"):
        out = io.StringIO()
        try:
            call_command(command, stdout=out, stderr=out)
        except CommandError as error:
            problems.append(f"{command} failed: {error}\n{out.getvalue()[-1500:]}")

    print(json.dumps({
        "problems": problems,
        "totals": totals,
        "orders": Order.objects.count(),
        "trades": Trade.objects.count(),
        "acked": len(acked),
        "statuses": dict(Order.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n")),
    }))
