"""Reconciliation reads one consistent snapshot: money that moves while it runs (a hold, a
deposit committing between two of its reads) never makes a healthy ledger look wrong."""
import threading

import pytest
from django.db import connections

from exchange import dbmath
from tests.factories import AccountFactory
from tests.support import fund
from trading import reconciliation
from trading.services import order_submit

pytestmark = pytest.mark.django_db(transaction=True)


def _elsewhere(work):
    """Commit ``work`` on another connection (another process's request) and wait for it."""
    failure = []

    def run():
        try:
            work()
        except BaseException as exc:
            failure.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not failure, failure


def test_money_moving_between_two_reads_does_not_fail_a_check(market, monkeypatch):
    alice, bob = AccountFactory(), AccountFactory()
    fund(alice, USD="1000", BTC="1")
    assert reconciliation.reconciliation_run().ok

    # Between the first check's read of the entries and its read of the balances, a hold
    # and a deposit commit elsewhere.
    real_sums, calls = dbmath.decimal_sums, []

    def sums_then_money_moves(*args, **kwargs):
        result = real_sums(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            _elsewhere(lambda: order_submit(account=alice, market="BTC-USD", side="buy", type="limit",
                                            price="100.00", quantity="1.0000"))
            _elsewhere(lambda: fund(bob, USD="2.25"))
        return result

    monkeypatch.setattr(reconciliation, "decimal_sums", sums_then_money_moves)
    report = reconciliation.reconciliation_run()
    # before: balances_match_entries failed (entries read before the hold and deposit, balances after)
    assert report.ok, report.checks
    monkeypatch.setattr(reconciliation, "decimal_sums", real_sums)
    assert reconciliation.reconciliation_run().ok  # and the next run sees the moved money, still exact
