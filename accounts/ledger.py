"""The posting core of the double-entry ledger.

``post`` (one journal) and ``post_many`` (a chunk of them, in a constant number of
statements) are the only code that writes ``LedgerEntry`` rows or moves ``Balance`` columns.
It runs inside the caller's transaction (services open exactly one), validates that the
legs balance per asset, locks the touched balance rows in primary-key order (``lock_balances``; so two
postings over the same rows can never deadlock), checks that no bucket would go negative,
then writes. A refusal raises before anything is written.
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q

from exchange import errors

from .models import Account, Asset, Balance, Bucket, EntryKind, Journal, LedgerEntry, MoneyNotStorable, money_storable

_PLAIN_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")

if TYPE_CHECKING:
    from django.contrib.auth.models import User


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


def to_amount(value: object, field: str = "amount") -> Decimal:
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


def positive_amount(value: object, asset: Asset, field: str = "amount") -> Decimal:
    """A strictly positive amount that fits the asset's scale."""
    amount = to_amount(value, field)
    if amount <= 0:
        raise errors.InvalidAmount(f"{field} must be positive; got {amount}.")
    if amount != amount.quantize(asset.quantum):
        raise errors.InvalidAmount(f"{asset.code} amounts have at most {asset.scale} decimal places; got {amount}.")
    return amount


SYSTEM_ACCOUNT_NAMES: dict[str, str] = {Account.SystemRole.EXTERNAL: "External", Account.SystemRole.FEES: "Fees"}


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
    created_by: User | None = None,
) -> Journal:
    """Write one balanced journal. Must run inside a transaction (the calling service's)."""
    if not connection.in_atomic_block:
        raise RuntimeError("ledger.post must run inside the calling service's transaction")
    _check_legs(kind, legs)

    deltas: dict[tuple[int, str], dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for leg in legs:
        if not leg.external:
            deltas[(leg.account_id, leg.asset)][leg.bucket] += leg.amount

    balances = lock_balances(deltas.keys())
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


@dataclass(frozen=True)
class Posting:
    """One journal for ``post_many``: its kind, legs, reference and idempotency key."""

    kind: str
    legs: list[Leg]
    reference: str = ""
    idempotency_key: str | None = None


def post_many(postings: list[Posting]) -> list[Journal]:
    """Write many balanced journals with a constant number of statements, whatever their
    number: the balance rows of all of them locked at once in primary-key order, one INSERT
    of the journals, one of their entries, one UPDATE of the balances (PostgreSQL). For
    settlement's chunks, where posting trade by trade cost ten statements each.

    Each journal must balance per asset; every bucket's final amount must not be negative
    (one refusal refuses all: raise before anything is written). A duplicate idempotency key
    raises ``IntegrityError`` and the caller's transaction is lost: ``post_many`` is for
    writers that cannot post twice (settlement flips its rows' flags in the same
    transaction); ``post`` is the forgiving one.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("ledger.post_many must run inside the calling service's transaction")
    if not postings:
        return []
    deltas: dict[tuple[int, str], dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for posting in postings:
        _check_legs(posting.kind, posting.legs)
        for leg in posting.legs:
            if not leg.external:
                deltas[(leg.account_id, leg.asset)][leg.bucket] += leg.amount
    balances = lock_balances(deltas.keys())
    for key, change in deltas.items():
        for bucket, delta in change.items():
            if getattr(balances[key], bucket) + delta < 0:
                raise _insufficient(balances[key], bucket, -delta)
            if not money_storable(getattr(balances[key], bucket) + delta):
                raise MoneyNotStorable(getattr(balances[key], bucket) + delta, f"{balances[key].asset_id} {bucket} balance")
    journals = Journal.objects.bulk_create(
        [Journal(kind=p.kind, reference=p.reference, idempotency_key=p.idempotency_key) for p in postings]
    )
    LedgerEntry.objects.bulk_create(
        [
            LedgerEntry(journal=journal, account_id=leg.account_id, asset_id=leg.asset, bucket=leg.bucket,
                        kind=leg.kind or posting.kind, amount=leg.amount, reference=posting.reference)
            for journal, posting in zip(journals, postings, strict=True)
            for leg in posting.legs
        ],
        batch_size=1000,
    )
    changed = [(balances[key], change) for key, change in deltas.items() if any(change.values())]
    if connection.vendor == "postgresql":
        rows = ", ".join(["(%s::bigint, %s::numeric, %s::numeric)"] * len(changed))
        params = [value for balance, change in changed
                  for value in (balance.pk, change.get(Bucket.AVAILABLE, 0), change.get(Bucket.LOCKED, 0))]
        table = Balance._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} AS b SET available = b.available + v.da, locked = b.locked + v.dl "
                f"FROM (VALUES {rows}) AS v(id, da, dl) WHERE b.id = v.id",
                params,
            )
    else:
        # SQLite computes `col + x` in binary floating point; the rows are locked (the whole
        # database), so the exact Decimal results are written.
        for balance, change in changed:
            Balance.objects.filter(pk=balance.pk).update(
                **{bucket: getattr(balance, bucket) + delta for bucket, delta in change.items() if delta}
            )
    return journals


def _check_legs(kind: str, legs: list[Leg]) -> None:
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


def _insufficient(balance: Balance, bucket: str, needed: Decimal) -> errors.InsufficientBalance:
    scale = Asset.objects.only("scale").get(pk=balance.asset_id).scale  # refusal path only
    have = format(getattr(balance, bucket).quantize(Decimal(1).scaleb(-scale)), "f")
    need = format(needed.quantize(Decimal(1).scaleb(-scale)), "f")
    held: dict[str, Any] = {bucket: have}  # "available" or "locked": an extra member of the problem
    return errors.InsufficientBalance(f"Needs {need} {balance.asset_id}; {have} {bucket}.", asset=balance.asset_id, needed=need, **held)


def _create_journal(
    kind: str, reference: str, reason: str, idempotency_key: str | None, created_by: User | None
) -> Journal:
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


def lock_balances(wanted: Iterable[tuple[int, str]]) -> dict[tuple[int, str], Balance]:
    """Create missing balance rows for ``(account_id, asset)`` keys, then lock all of them in
    primary-key order, to the end of the transaction.

    ``post`` calls it for its own rows. A transaction that posts several journals (a
    settlement chunk) calls it first with every row any of them will touch: locking journal
    by journal would take rows in an order that is global only within each journal, and two
    such transactions over the same accounts could each hold what the other's next journal
    needs (a deadlock). Locked up front in one primary-key order, the second simply waits.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("lock_balances must run inside the calling service's transaction")
    keys = list(wanted)
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
