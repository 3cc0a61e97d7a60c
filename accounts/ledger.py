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
from exchange.pgarrays import array_literal, int_array

from .models import (
    Account,
    Asset,
    Balance,
    Bucket,
    EntryKind,
    Journal,
    LedgerEntry,
    MoneyNotStorable,
    money_storable,
)

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


def post_many(postings: list[Posting], locked: dict[tuple[int, str], Balance] | None = None) -> list[int]:
    """Write many balanced journals with a constant number of statements, whatever their
    number; return their ids, in order. The balance rows of all of them are locked at once in
    primary-key order (``locked``: the caller already holds them all, from ``lock_balances``
    in this transaction — nothing is read again; their instances are left holding the
    amounts written). PostgreSQL: ONE statement writes the
    journals, their entries and the balances (``_write_postgres``); SQLite: one INSERT of the
    journals, one of their entries, one UPDATE per balance. For settlement's chunks, where
    posting trade by trade cost ten statements each.

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
    if locked is None or any(key not in locked for key in deltas):
        locked = lock_balances(deltas.keys())
    balances = locked
    for key, change in deltas.items():
        for bucket, delta in change.items():
            if getattr(balances[key], bucket) + delta < 0:
                raise _insufficient(balances[key], bucket, -delta)
            if not money_storable(getattr(balances[key], bucket) + delta):
                raise MoneyNotStorable(getattr(balances[key], bucket) + delta, f"{balances[key].asset_id} {bucket} balance")
    changed = [(balances[key], change) for key, change in deltas.items() if any(change.values())]
    if connection.vendor == "postgresql":
        ids = _write_postgres(postings, changed)
        _written(changed)
        return ids
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
    # SQLite computes `col + x` in binary floating point; the rows are locked (the whole
    # database), so the exact Decimal results are written.
    for balance, change in changed:
        Balance.objects.filter(pk=balance.pk).update(
            **{bucket: getattr(balance, bucket) + delta for bucket, delta in change.items() if delta}
        )
    _written(changed)
    return [journal.pk for journal in journals]


def _written(changed: list[tuple[Balance, dict[str, Decimal]]]) -> None:
    """Bring the locked rows' instances to what was written (a caller that passed ``locked``
    publishes the new amounts from them without reading the rows again)."""
    for balance, change in changed:
        for bucket, delta in change.items():
            setattr(balance, bucket, getattr(balance, bucket) + delta)


_JOURNAL_SQL = """
WITH j AS MATERIALIZED (
    SELECT nextval(pg_get_serial_sequence('{journal}', 'id')) AS id, t.n, t.kind, t.reference, t.key
    FROM unnest(%(kinds)s::text[], %(references)s::text[], %(keys)s::text[]) WITH ORDINALITY AS t(kind, reference, key, n)
    ORDER BY t.n
), journals AS (
    INSERT INTO {journal} (id, kind, reference, reason, idempotency_key, created_at)
    SELECT id, kind, reference, '', key, %(now)s FROM j ORDER BY n
), entries AS (
    INSERT INTO {entry} (journal_id, account_id, asset_id, bucket, kind, amount, reference, created_at)
    SELECT j.id, e.account, e.asset, e.bucket, COALESCE(e.kind, j.kind), e.amount, j.reference, %(now)s
    FROM unnest(%(ns)s::bigint[], %(accounts)s::bigint[], %(assets)s::text[], %(buckets)s::text[], %(entry_kinds)s::text[],
                %(amounts)s::numeric[]) WITH ORDINALITY AS e(n, account, asset, bucket, kind, amount, ord)
    JOIN j ON j.n = e.n
    ORDER BY e.ord
), balances AS (
    UPDATE {balance} AS b SET available = b.available + v.da, locked = b.locked + v.dl
    FROM unnest(%(balance_ids)s::bigint[], %(das)s::numeric[], %(dls)s::numeric[]) AS v(id, da, dl)
    WHERE b.id = v.id
)
SELECT id FROM j ORDER BY n
"""


def _write_postgres(postings: list[Posting], changed: list[tuple[Balance, dict[str, Decimal]]]) -> list[int]:
    """The journals, their entries (in leg order) and the balance changes as ONE statement
    (data-modifying CTEs over arrays): no model instance per journal or entry, and no
    Django bulk-insert compilation, which were most of a settlement chunk's CPU."""
    from django.utils import timezone

    ns: list[int] = []
    accounts: list[int] = []
    assets: list[str] = []
    buckets: list[str] = []
    kinds: list[str | None] = []
    amounts: list[Decimal] = []
    for n, posting in enumerate(postings, start=1):
        for leg in posting.legs:
            if not money_storable(leg.amount):
                raise MoneyNotStorable(leg.amount, "amount")
            ns.append(n)
            accounts.append(leg.account_id)
            assets.append(leg.asset)
            buckets.append(leg.bucket)
            kinds.append(leg.kind)
            amounts.append(leg.amount)
    params: dict[str, Any] = {
        "kinds": array_literal(p.kind for p in postings),
        "references": array_literal(p.reference for p in postings),
        "keys": array_literal(p.idempotency_key for p in postings),
        "now": timezone.now(),
        "ns": int_array(ns),
        "accounts": int_array(accounts),
        "assets": array_literal(assets),
        "buckets": array_literal(buckets),
        "entry_kinds": array_literal(kinds),
        "amounts": array_literal(amounts),
        "balance_ids": int_array(balance.pk for balance, _ in changed),
        "das": array_literal(change.get(Bucket.AVAILABLE, Decimal(0)) for _, change in changed),
        "dls": array_literal(change.get(Bucket.LOCKED, Decimal(0)) for _, change in changed),
    }
    sql = _JOURNAL_SQL.format(journal=Journal._meta.db_table, entry=LedgerEntry._meta.db_table,
                              balance=Balance._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


_KINDS, _BUCKETS = frozenset(EntryKind.values), frozenset(Bucket.values)  # ``.values`` builds a list per access


def _check_legs(kind: str, legs: list[Leg]) -> None:
    if kind not in _KINDS:
        raise ValueError(f"unknown journal kind {kind!r}")
    if not legs:
        raise ValueError("a journal needs legs")
    per_asset: dict[str, Decimal] = defaultdict(Decimal)
    for leg in legs:
        if leg.amount == 0:
            raise ValueError(f"zero-amount leg {leg}")
        if leg.bucket not in _BUCKETS:
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
    if connection.vendor == "postgresql":
        return _lock_postgres(keys)
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


_BALANCE_COLUMNS = [f.attname for f in Balance._meta.concrete_fields]
_LOCK_SQL = (
    f"SELECT {', '.join(f.column for f in Balance._meta.concrete_fields)} FROM {Balance._meta.db_table} "
    f"WHERE (account_id, asset_id) IN (SELECT * FROM unnest(%s::bigint[], %s::text[])) ORDER BY id FOR UPDATE"
)


def _lock_postgres(keys: list[tuple[int, str]]) -> dict[tuple[int, str], Balance]:
    """``lock_balances`` on PostgreSQL: the keys as two arrays and a prepared statement (the
    ORM's OR of one ``Q`` per key cost a settlement chunk more CPU to compile than to run)."""

    def read() -> dict[tuple[int, str], Balance]:
        with connection.cursor() as cursor:
            cursor.execute(_LOCK_SQL, [int_array(a for a, _ in keys), array_literal(asset for _, asset in keys)])
            rows = cursor.fetchall()
        balances = (Balance.from_db(connection.alias, _BALANCE_COLUMNS, row) for row in rows)
        return {(b.account_id, b.asset_id): b for b in balances}

    locked = read()
    missing = [key for key in keys if key not in locked]
    if missing:  # first movement of an asset for an account: rare, so a second round trip
        Balance.objects.bulk_create(
            [Balance(account_id=account_id, asset_id=asset) for account_id, asset in missing],
            ignore_conflicts=True,  # a concurrent posting may create the same row first
        )
        locked = read()
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
