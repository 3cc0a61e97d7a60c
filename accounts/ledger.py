"""The posting core of the double-entry ledger.

``post`` is the only code that writes ``LedgerEntry`` rows or moves ``Balance`` columns.
It runs inside the caller's transaction (services open exactly one), validates that the
legs balance per asset, locks the touched balance rows in primary-key order (so two
postings over the same rows can never deadlock), checks that no bucket would go negative,
then writes. A refusal raises before anything is written.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q

from exchange import errors

from .models import Account, Asset, Balance, Bucket, EntryKind, Journal, LedgerEntry, MoneyNotStorable, money_storable


_PLAIN_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")


class AlreadyPosted(Exception):
    """A journal with this idempotency key exists: the movement was already applied."""


@dataclass(frozen=True)
class Leg:
    """One side of a movement: ``amount`` (signed) into ``bucket`` of an account's asset."""

    account_id: int
    asset: str
    bucket: str
    amount: Decimal
    kind: str | None = None  # defaults to the journal's kind
    external: bool = False  # the leg of the `external` account, which keeps no balance rows


def to_amount(value, field: str = "amount") -> Decimal:
    """Parse a money value. Decimal, int and decimal strings are accepted; float never."""
    if isinstance(value, (bool, float)):
        raise errors.ValidationError.field(field, "invalid", f"{field} must be a decimal string, not a float.")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, str):
        # Plain ASCII decimals only: Decimal() itself would take "1e30", " 5", "NaN" and
        # Unicode digits such as "١٢".
        if not _PLAIN_DECIMAL.fullmatch(value):
            raise errors.ValidationError.field(field, "invalid", f"{field} is not a plain decimal number.")
        try:
            amount = Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern excludes these
            raise errors.ValidationError.field(field, "invalid", f"{field} is not a decimal number.") from None
    else:
        raise errors.ValidationError.field(field, "invalid", f"{field} must be a decimal string.")
    if not amount.is_finite():
        raise errors.ValidationError.field(field, "invalid", f"{field} must be a finite number.")
    return amount


def get_asset(code: str) -> Asset:
    try:
        return Asset.objects.get(pk=code)
    except Asset.DoesNotExist:
        raise errors.AssetNotFound(f"Asset {code!r} does not exist.") from None


def positive_amount(value, asset: Asset, field: str = "amount") -> Decimal:
    """A strictly positive amount that fits the asset's scale."""
    amount = to_amount(value, field)
    if amount <= 0:
        raise errors.InvalidAmount(f"{field} must be positive; got {amount}.")
    if amount != amount.quantize(asset.quantum):
        raise errors.InvalidAmount(f"{asset.code} amounts have at most {asset.scale} decimal places; got {amount}.")
    return amount


SYSTEM_ACCOUNT_NAMES = {Account.SystemRole.EXTERNAL: "External", Account.SystemRole.FEES: "Fees"}


def system_account(role: str) -> Account:
    """The system account for ``role`` (created by migration; recreated if a test flushed it)."""
    account, _ = Account.objects.get_or_create(
        system_role=role, defaults={"name": SYSTEM_ACCOUNT_NAMES[role], "kind": Account.Kind.SYSTEM}
    )
    return account


def post(
    kind: str,
    legs: list[Leg],
    *,
    reference: str = "",
    reason: str = "",
    idempotency_key: str | None = None,
    created_by=None,
) -> Journal:
    """Write one balanced journal. Must run inside a transaction (the calling service's)."""
    if not connection.in_atomic_block:
        raise RuntimeError("ledger.post must run inside the calling service's transaction")
    if kind not in EntryKind.values:
        raise ValueError(f"unknown journal kind {kind!r}")
    if not legs:
        raise ValueError("a journal needs legs")
    per_asset: dict[str, Decimal] = defaultdict(Decimal)
    for leg in legs:
        if leg.amount == 0:
            raise ValueError(f"zero-amount leg {leg}")
        if leg.bucket not in Bucket.values:
            raise ValueError(f"unknown bucket {leg.bucket!r}")
        per_asset[leg.asset] += leg.amount
    unbalanced = {asset: total for asset, total in per_asset.items() if total != 0}
    if unbalanced:
        raise ValueError(f"journal does not balance: {unbalanced}")

    deltas: dict[tuple[int, str], dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for leg in legs:
        if not leg.external:
            deltas[(leg.account_id, leg.asset)][leg.bucket] += leg.amount

    balances = _lock_balances(deltas.keys())
    for key, change in deltas.items():
        balance = balances[key]
        for bucket, delta in change.items():
            if getattr(balance, bucket) + delta < 0:
                raise _insufficient(balance, bucket, -delta)
            if not money_storable(getattr(balance, bucket) + delta):
                # PostgreSQL would fail the write with an overflow; SQLite would round it.
                raise MoneyNotStorable(getattr(balance, bucket) + delta, f"{balance.asset_id} {bucket} balance")

    journal = _create_journal(kind, reference, reason, idempotency_key, created_by)
    exact_in_database = connection.vendor == "postgresql"
    for key, change in deltas.items():
        balance = balances[key]
        if exact_in_database:
            values = {bucket: F(bucket) + delta for bucket, delta in change.items() if delta}
        else:
            # SQLite would compute `available + delta` in binary floating point (2.8e-17
            # instead of 0). The rows are locked (SQLite: the whole database, IMMEDIATE), so
            # the exact Decimal result is written instead.
            values = {bucket: getattr(balance, bucket) + delta for bucket, delta in change.items() if delta}
        if values:
            Balance.objects.filter(pk=balance.pk).update(**values)
    LedgerEntry.objects.bulk_create(
        LedgerEntry(
            journal=journal,
            account_id=leg.account_id,
            asset_id=leg.asset,
            bucket=leg.bucket,
            kind=leg.kind or kind,
            amount=leg.amount,
            reference=reference,
        )
        for leg in legs
    )
    return journal


def _insufficient(balance: Balance, bucket: str, needed: Decimal) -> errors.InsufficientBalance:
    scale = Asset.objects.only("scale").get(pk=balance.asset_id).scale  # refusal path only
    have = format(getattr(balance, bucket).quantize(Decimal(1).scaleb(-scale)), "f")
    need = format(needed.quantize(Decimal(1).scaleb(-scale)), "f")
    return errors.InsufficientBalance(
        f"Needs {need} {balance.asset_id}; {have} {bucket}.", asset=balance.asset_id, needed=need, **{bucket: have}
    )


def _create_journal(kind, reference, reason, idempotency_key, created_by) -> Journal:
    if idempotency_key is None:
        return Journal.objects.create(kind=kind, reference=reference, reason=reason, created_by=created_by)
    try:
        with transaction.atomic():  # savepoint: the caller's transaction survives a duplicate
            return Journal.objects.create(
                kind=kind, reference=reference, reason=reason, idempotency_key=idempotency_key, created_by=created_by
            )
    except IntegrityError:
        if Journal.objects.filter(idempotency_key=idempotency_key).exists():
            raise AlreadyPosted(idempotency_key) from None
        raise


def _lock_balances(keys) -> dict[tuple[int, str], Balance]:
    """Create missing balance rows, then lock all of them in primary-key order."""
    keys = list(keys)
    if not keys:
        return {}
    match = Q()
    for account_id, asset in keys:
        match |= Q(account_id=account_id, asset_id=asset)
    query = Balance.objects.select_for_update(of=("self",)).filter(match).order_by("pk")
    locked = {(b.account_id, b.asset_id): b for b in query}
    missing = [key for key in keys if key not in locked]
    if missing:  # first movement of an asset for an account: rare, so a second round trip
        Balance.objects.bulk_create(
            [Balance(account_id=account_id, asset_id=asset) for account_id, asset in missing],
            ignore_conflicts=True,  # a concurrent posting may create the same row first
        )
        locked = {(b.account_id, b.asset_id): b for b in query.all()}
    return locked


# --- Leg builders: the shapes of the elementary movements -------------------------------


def deposit_legs(account_id: int, external_id: int, asset: str, amount: Decimal) -> list[Leg]:
    return [
        Leg(external_id, asset, Bucket.AVAILABLE, -amount, external=True),
        Leg(account_id, asset, Bucket.AVAILABLE, amount),
    ]


def withdraw_legs(account_id: int, external_id: int, asset: str, amount: Decimal) -> list[Leg]:
    return [
        Leg(account_id, asset, Bucket.AVAILABLE, -amount),
        Leg(external_id, asset, Bucket.AVAILABLE, amount, external=True),
    ]


def hold_legs(account_id: int, asset: str, amount: Decimal) -> list[Leg]:
    return [
        Leg(account_id, asset, Bucket.AVAILABLE, -amount),
        Leg(account_id, asset, Bucket.LOCKED, amount),
    ]


def release_legs(account_id: int, asset: str, amount: Decimal) -> list[Leg]:
    return [
        Leg(account_id, asset, Bucket.LOCKED, -amount),
        Leg(account_id, asset, Bucket.AVAILABLE, amount),
    ]


def transfer_legs(
    from_id: int, to_id: int, asset: str, amount: Decimal, from_bucket: str = Bucket.AVAILABLE, kind: str | None = None
) -> list[Leg]:
    return [
        Leg(from_id, asset, from_bucket, -amount, kind),
        Leg(to_id, asset, Bucket.AVAILABLE, amount, kind),
    ]
