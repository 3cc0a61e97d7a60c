"""Property: any sequence of ledger operations conserves every asset and keeps every
balance non-negative; each balance equals the sum of its entries. (Sums go through
``decimal_sums``: SQLite's SUM() is binary floating point.)"""
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts import services
from accounts.models import Account, Balance, LedgerEntry
from exchange import errors
from exchange.dbmath import decimal_sums
from tests.factories import AccountFactory, AssetFactory

pytestmark = pytest.mark.django_db

amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("500"), places=2)
operation = st.tuples(
    st.sampled_from(["deposit", "withdraw", "hold", "release", "transfer", "transfer_locked"]),
    st.integers(0, 2),  # account index
    st.integers(0, 2),  # counterparty index
    st.sampled_from(["USD", "EUR"]),
    amounts,
)


def held_total(asset_code):
    rows = Balance.objects.filter(asset_id=asset_code)
    return sum(
        (total for bucket in ("available", "locked") for total in decimal_sums(rows, ("asset_id",), bucket).values()),
        Decimal(0),
    )


def entries_total(**match):
    return sum(decimal_sums(LedgerEntry.objects.filter(**match), ("asset_id",), "amount").values(), Decimal(0))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(operation, min_size=1, max_size=25))
def test_any_sequence_conserves_assets_and_never_goes_negative(django_db_blocker, ops):
    # Hypothesis runs many examples in one database transaction, so each example measures
    # against the totals it started from.
    AssetFactory(code="USD", scale=2)
    AssetFactory(code="EUR", scale=2)
    accounts = [AccountFactory() for _ in range(3)]
    external = Account.objects.get(system_role="external")
    deposited = {code: held_total(code) for code in ("USD", "EUR")}

    for kind, who, other, asset, amount in ops:
        account, counterparty = accounts[who], accounts[other]
        try:
            if kind == "deposit":
                services.balance_deposit(account=account, asset=asset, amount=amount)
                deposited[asset] += amount
            elif kind == "withdraw":
                services.balance_withdraw(account=account, asset=asset, amount=amount)
                deposited[asset] -= amount
            elif kind == "hold":
                services.balance_hold(account=account, asset=asset, amount=amount)
            elif kind == "release":
                services.balance_release(account=account, asset=asset, amount=amount)
            else:
                services.balance_transfer(
                    from_account=account,
                    to_account=counterparty,
                    asset=asset,
                    amount=amount,
                    kind="trade",
                    from_bucket="locked" if kind == "transfer_locked" else "available",
                )
        except (errors.InsufficientBalance, errors.ValidationError):
            pass  # refusals are allowed; the invariants below must hold regardless

        for asset_code, expected in deposited.items():
            assert held_total(asset_code) == expected
            assert entries_total(account=external, asset_id=asset_code) == -expected
        assert not Balance.objects.filter(available__lt=0).exists()
        assert not Balance.objects.filter(locked__lt=0).exists()

    for row in Balance.objects.all():
        for bucket in ("available", "locked"):
            assert getattr(row, bucket) == entries_total(account=row.account, asset=row.asset, bucket=bucket)
