"""Concurrency: many threads holding and releasing against one balance at once never drive
it negative and never lose an update. Row locks make this a PostgreSQL property; SQLite
serialises all writers, so the test only runs on PostgreSQL."""
import threading
from decimal import Decimal

import pytest
from django.db import connection, connections

from accounts import services
from accounts.models import Balance, LedgerEntry
from exchange import errors
from tests.factories import AccountFactory, AssetFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row-level locking needs PostgreSQL"),
]

THREADS = 8
ROUNDS = 25


def test_concurrent_holds_and_releases_lose_nothing():
    AssetFactory(code="USD", scale=2)
    account = AccountFactory()
    other = AccountFactory()
    services.balance_deposit(account=account, asset="USD", amount="100.00")
    outcomes = {"held": 0, "refused": 0, "released": 0}
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)

    def worker(index):
        try:
            barrier.wait()
            for round_no in range(ROUNDS):
                try:
                    # Each hold asks for 3.00 while only 100.00 exists: many must be refused.
                    services.balance_hold(account=account, asset="USD", amount="3.00", reference=f"t{index}")
                    with lock:
                        outcomes["held"] += 1
                except errors.InsufficientBalance:
                    with lock:
                        outcomes["refused"] += 1
                if round_no % 3 == 0:
                    try:
                        services.balance_release(account=account, asset="USD", amount="1.00")
                        with lock:
                            outcomes["released"] += 1
                    except errors.InsufficientBalance:
                        pass
                if round_no % 5 == 0:
                    try:
                        # Touch a second row in a fixed order: no deadlock may appear.
                        services.balance_transfer(
                            from_account=account, to_account=other, asset="USD", amount="0.50", kind="trade",
                            from_bucket="locked",
                        )
                    except errors.InsufficientBalance:
                        pass
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    row = Balance.objects.get(account=account, asset_id="USD")
    moved = Balance.objects.get(account=other, asset_id="USD").available
    assert row.available >= 0 and row.locked >= 0
    assert outcomes["refused"] > 0, "the test must actually contend for the balance"
    # No lost update: the balance equals exactly what the successful operations imply ...
    assert row.locked == Decimal("3.00") * outcomes["held"] - Decimal("1.00") * outcomes["released"] - moved
    assert row.available + row.locked + moved == Decimal("100.00")
    # ... and equals the sum of its ledger entries.
    for bucket in ("available", "locked"):
        entries = LedgerEntry.objects.filter(account=account, asset_id="USD", bucket=bucket)
        assert sum(e.amount for e in entries) == getattr(row, bucket)
