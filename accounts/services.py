"""Account and balance services: every state change of accounts and money goes through here.

Each public service is one durable transaction (it cannot silently nest inside a caller's)
that posts one balanced journal through ``accounts.ledger.post``. Services that must move
money as part of a larger change (order submission, settlement) call ``ledger.post`` with
the leg builders inside their own transaction instead.
"""
from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db import transaction

from audit.services import audit_record, audit_refusals
from exchange import errors

from . import ledger
from .models import Account, Bucket, EntryKind, Journal

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def account_create(*, name: str, owner: User | None = None, username: str | None = None) -> Account:
    """Create a trader account, with a new owning user when ``username`` is given.
    Audited as ``account.created``."""
    with transaction.atomic(durable=True):
        if owner is None and username is not None:
            User = get_user_model()
            if User.objects.filter(username=username).exists():
                raise errors.ValidationError.field("username", "taken", f"User {username!r} already exists.")
            owner = User.objects.create_user(username=username)
            owner.set_unusable_password()
            owner.save(update_fields=["password"])
        account = Account.objects.create(name=name, owner=owner, kind=Account.Kind.TRADER)
        audit_record("account.created", target=account, after={"name": name, "owner": owner.get_username() if owner else None})
        return account


def _trader(account: Account | int) -> Account:
    account_id = account.pk if isinstance(account, Account) else account
    try:
        found = Account.objects.get(pk=account_id)
    except Account.DoesNotExist:
        raise errors.NotFound(f"Account {account_id} does not exist.") from None
    if not found.has_balances:
        raise errors.ValidationError.field("account", "system_account", "The external account holds no balances.")
    return found


def balance_deposit(
    *, account: Account | int, asset: str, amount: object, reference: str = "", reason: str = "", actor: User | None = None
) -> Journal:
    """Credit ``amount`` of ``asset`` to the account's available balance, from ``external``.
    Audited as ``balance.deposited`` with the reason; an operator's (``actor``) refused
    attempt is audited too."""
    return _external_movement(
        "balance.deposited", EntryKind.DEPOSIT, ledger.deposit_legs,
        account=account, asset=asset, amount=amount, reference=reference, reason=reason, actor=actor,
    )


def balance_withdraw(
    *, account: Account | int, asset: str, amount: object, reference: str = "", reason: str = "", actor: User | None = None
) -> Journal:
    """Debit ``amount`` of ``asset`` from the account's available balance to ``external``.
    Audited as ``balance.withdrawn`` with the reason; an operator's (``actor``) refused
    attempt is audited too."""
    return _external_movement(
        "balance.withdrawn", EntryKind.WITHDRAWAL, ledger.withdraw_legs,
        account=account, asset=asset, amount=amount, reference=reference, reason=reason, actor=actor,
    )


def _external_movement(
    action: str,
    kind: str,
    legs: Callable[[int, int, str, Decimal], list[ledger.Leg]],
    *,
    account: Account | int,
    asset: str,
    amount: object,
    reference: str,
    reason: str,
    actor: User | None,
) -> Journal:
    """Money crossing the exchange's boundary (deposits, withdrawals): always audited, since
    it changes what the exchange owes its traders. Holds, releases, trades and fees are
    internal and recorded by the ledger alone."""
    account_id = account.pk if isinstance(account, Account) else account
    attempt = {"asset": asset, "amount": amount, "reference": reference}
    with audit_refusals(
        action, target=("accounts.account", account_id), account=account_id if isinstance(account_id, int) else None,
        actor=actor, after=attempt, enabled=actor is not None,
    ), transaction.atomic(durable=True):
        target = _trader(account)
        asset_obj = ledger.get_asset(asset)
        value = ledger.positive_amount(amount, asset_obj)
        external = ledger.system_account(Account.SystemRole.EXTERNAL)
        journal = ledger.post(
            kind,
            legs(target.pk, external.pk, asset_obj.code, value),
            reference=reference,
            reason=reason,
            created_by=actor,
        )
        audit_record(action, target=target, actor=actor, reason=reason, after={**attempt, "amount": value, "journal_id": journal.pk})
        return journal


def balance_hold(*, account: Account | int, asset: str, amount: object, reference: str = "") -> Journal:
    """Move ``amount`` from available to locked (funds reserved for an open obligation)."""
    with transaction.atomic(durable=True):
        target = _trader(account)
        asset_obj = ledger.get_asset(asset)
        value = ledger.positive_amount(amount, asset_obj)
        return ledger.post(EntryKind.HOLD, ledger.hold_legs(target.pk, asset_obj.code, value), reference=reference)


def balance_release(*, account: Account | int, asset: str, amount: object, reference: str = "") -> Journal:
    """Move ``amount`` from locked back to available."""
    with transaction.atomic(durable=True):
        target = _trader(account)
        asset_obj = ledger.get_asset(asset)
        value = ledger.positive_amount(amount, asset_obj)
        return ledger.post(EntryKind.RELEASE, ledger.release_legs(target.pk, asset_obj.code, value), reference=reference)


def balance_transfer(
    *,
    from_account: Account | int,
    to_account: Account | int,
    asset: str,
    amount: object,
    kind: str = EntryKind.ADJUSTMENT,
    from_bucket: str = Bucket.AVAILABLE,
    reference: str = "",
    reason: str = "",
    actor: User | None = None,
) -> Journal:
    """Move ``amount`` from one account's bucket to another account's available balance.
    Manual adjustments (``kind="adjustment"``) are audited as ``balance.adjusted`` on the
    source account; trades and fees are settlement's, recorded by the ledger alone."""
    if kind not in (EntryKind.TRADE, EntryKind.FEE, EntryKind.ADJUSTMENT):
        raise errors.ValidationError.field("kind", "invalid", "transfer kind is trade, fee or adjustment.")
    with transaction.atomic(durable=True):
        source, target = _trader(from_account), _trader(to_account)
        if source.pk == target.pk and from_bucket == Bucket.AVAILABLE:
            raise errors.ValidationError.field("to_account", "same_account", "Cannot transfer to the same balance.")
        asset_obj = ledger.get_asset(asset)
        value = ledger.positive_amount(amount, asset_obj)
        journal = ledger.post(
            kind,
            ledger.transfer_legs(source.pk, target.pk, asset_obj.code, value, from_bucket),
            reference=reference,
            reason=reason,
            created_by=actor,
        )
        if kind == EntryKind.ADJUSTMENT:
            audit_record(
                "balance.adjusted", target=source, actor=actor, reason=reason,
                after={"asset": asset_obj.code, "amount": value, "from_bucket": from_bucket,
                       "to_account": target.pk, "reference": reference, "journal_id": journal.pk},
            )
        return journal


