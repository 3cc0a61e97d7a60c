"""Account and balance services: every state change of accounts and money goes through here.

Each public service is one durable transaction (it cannot silently nest inside a caller's)
that posts one balanced journal through ``accounts.ledger.post``. Services that must move
money as part of a larger change (order submission, settlement) call ``ledger.post`` with
the leg builders inside their own transaction instead.
"""
from __future__ import annotations


from django.contrib.auth import get_user_model
from django.db import transaction

from exchange import errors

from . import ledger
from .models import Account, Asset, Bucket, EntryKind, Journal


def asset_create(*, code: str, scale: int, name: str = "") -> tuple[Asset, bool]:
    """Create an asset, or return the existing one (``created`` is False) if the code exists."""
    if not isinstance(scale, int) or not 0 <= scale <= 18:
        raise errors.ValidationError.field("scale", "invalid", "scale must be an integer from 0 to 18.")
    with transaction.atomic(durable=True):
        asset, created = Asset.objects.get_or_create(code=code, defaults={"scale": scale, "name": name})
        if created:
            asset.full_clean()
    return asset, created


def account_create(*, name: str, owner=None, username: str | None = None) -> Account:
    """Create a trader account, with a new owning user when ``username`` is given."""
    with transaction.atomic(durable=True):
        if owner is None and username is not None:
            User = get_user_model()
            if User.objects.filter(username=username).exists():
                raise errors.ValidationError.field("username", "taken", f"User {username!r} already exists.")
            owner = User.objects.create_user(username=username)
            owner.set_unusable_password()
            owner.save(update_fields=["password"])
        return Account.objects.create(name=name, owner=owner, kind=Account.Kind.TRADER)


def _trader(account: Account | int) -> Account:
    account_id = account.pk if isinstance(account, Account) else account
    try:
        found = Account.objects.get(pk=account_id)
    except Account.DoesNotExist:
        raise errors.NotFound(f"Account {account_id} does not exist.") from None
    if not found.has_balances:
        raise errors.ValidationError.field("account", "system_account", "The external account holds no balances.")
    return found


def balance_deposit(*, account, asset: str, amount, reference: str = "", reason: str = "", actor=None) -> Journal:
    """Credit ``amount`` of ``asset`` to the account's available balance, from ``external``."""
    with transaction.atomic(durable=True):
        target = _trader(account)
        asset_obj = ledger.get_asset(asset)
        value = ledger.positive_amount(amount, asset_obj)
        external = ledger.system_account(Account.SystemRole.EXTERNAL)
        return ledger.post(
            EntryKind.DEPOSIT,
            ledger.deposit_legs(target.pk, external.pk, asset_obj.code, value),
            reference=reference,
            reason=reason,
            created_by=actor,
        )


def balance_withdraw(*, account, asset: str, amount, reference: str = "", reason: str = "", actor=None) -> Journal:
    """Debit ``amount`` of ``asset`` from the account's available balance to ``external``."""
    with transaction.atomic(durable=True):
        target = _trader(account)
        asset_obj = ledger.get_asset(asset)
        value = ledger.positive_amount(amount, asset_obj)
        external = ledger.system_account(Account.SystemRole.EXTERNAL)
        return ledger.post(
            EntryKind.WITHDRAWAL,
            ledger.withdraw_legs(target.pk, external.pk, asset_obj.code, value),
            reference=reference,
            reason=reason,
            created_by=actor,
        )


def balance_hold(*, account, asset: str, amount, reference: str = "") -> Journal:
    """Move ``amount`` from available to locked (funds reserved for an open obligation)."""
    with transaction.atomic(durable=True):
        target = _trader(account)
        asset_obj = ledger.get_asset(asset)
        value = ledger.positive_amount(amount, asset_obj)
        return ledger.post(EntryKind.HOLD, ledger.hold_legs(target.pk, asset_obj.code, value), reference=reference)


def balance_release(*, account, asset: str, amount, reference: str = "") -> Journal:
    """Move ``amount`` from locked back to available."""
    with transaction.atomic(durable=True):
        target = _trader(account)
        asset_obj = ledger.get_asset(asset)
        value = ledger.positive_amount(amount, asset_obj)
        return ledger.post(EntryKind.RELEASE, ledger.release_legs(target.pk, asset_obj.code, value), reference=reference)


def balance_transfer(
    *,
    from_account,
    to_account,
    asset: str,
    amount,
    kind: str = EntryKind.ADJUSTMENT,
    from_bucket: str = Bucket.AVAILABLE,
    reference: str = "",
    reason: str = "",
    actor=None,
) -> Journal:
    """Move ``amount`` from one account's bucket to another account's available balance."""
    if kind not in (EntryKind.TRADE, EntryKind.FEE, EntryKind.ADJUSTMENT):
        raise errors.ValidationError.field("kind", "invalid", "transfer kind is trade, fee or adjustment.")
    with transaction.atomic(durable=True):
        source, target = _trader(from_account), _trader(to_account)
        if source.pk == target.pk and from_bucket == Bucket.AVAILABLE:
            raise errors.ValidationError.field("to_account", "same_account", "Cannot transfer to the same balance.")
        asset_obj = ledger.get_asset(asset)
        value = ledger.positive_amount(amount, asset_obj)
        return ledger.post(
            kind,
            ledger.transfer_legs(source.pk, target.pk, asset_obj.code, value, from_bucket),
            reference=reference,
            reason=reason,
            created_by=actor,
        )


