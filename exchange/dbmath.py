"""Exact decimal sums on every database.

PostgreSQL sums NUMERIC exactly, so it aggregates in the database. SQLite keeps decimals
with NUMERIC affinity and its SUM() works in binary floating point, which turns a zero
balance into -5.55e-16; there the rows are summed in Python with ``Decimal``. The embedded
mode's data is small, so the cost is irrelevant where it is paid.
"""
from collections import defaultdict
from decimal import Decimal

from django.db import connection
from django.db.models import Sum


def decimal_sums(queryset, keys: tuple[str, ...], field: str) -> dict[tuple, Decimal]:
    """``{(key values...): exact sum of field}`` over ``queryset`` grouped by ``keys``."""
    totals: dict[tuple, Decimal] = defaultdict(Decimal)
    if connection.vendor == "postgresql":
        for row in queryset.order_by().values(*keys).annotate(_total=Sum(field)):
            totals[tuple(row[k] for k in keys)] = row["_total"]
    else:
        for row in queryset.order_by().values_list(*keys, field).iterator(chunk_size=5000):
            totals[row[:-1]] += row[-1]
    return totals
