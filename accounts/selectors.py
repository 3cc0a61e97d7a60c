"""Read-side queries over accounts, balances and the ledger, always scoped to one account.

Every selector takes the caller's account explicitly; none can return another account's
rows, which is what keeps the private endpoints free of object-level authorisation bugs.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from exchange import errors

from .models import Account, Asset, Balance, LedgerEntry


@dataclass(frozen=True)
class AssetBalance:
    asset: Asset
    available: Decimal
    locked: Decimal

    @property
    def total(self) -> Decimal:
        return self.available + self.locked


def account_get(*, account_id: int) -> Account:
    try:
        return Account.objects.select_related("owner").get(pk=account_id)
    except Account.DoesNotExist:
        raise errors.NotFound(f"Account {account_id} does not exist.") from None


def asset_list():
    return Asset.objects.all()


def balances_for_assets(*, account_id: int, assets: list[Asset]) -> list[AssetBalance]:
    """The account's balance in each of ``assets`` (zero where it never held one)."""
    rows = {
        b.asset_id: b
        for b in Balance.objects.filter(account_id=account_id, asset_id__in=[a.code for a in assets])
    }
    zero = Decimal(0)
    return [
        AssetBalance(asset, rows[asset.code].available, rows[asset.code].locked)
        if asset.code in rows
        else AssetBalance(asset, zero, zero)
        for asset in assets
    ]


def ledger_entry_list(*, account_id: int, asset: str | None = None):
    """The account's own ledger entries (newest last in id order), optionally one asset's."""
    entries = LedgerEntry.objects.filter(account_id=account_id).select_related("asset")
    if asset:
        if not Asset.objects.filter(pk=asset).exists():
            raise errors.AssetNotFound(f"Asset {asset!r} does not exist.")
        entries = entries.filter(asset_id=asset)
    return entries

