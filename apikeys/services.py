"""API key services: create, update, revoke, rotate encryption; and onboarding a trader.

Each public service is one durable transaction. Refusals raise a ``BourseError`` before
anything is written. An HMAC secret exists in clear only in the return value of
``apikey_create`` / ``trader_create``: callers show it once and never store it.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts import ledger
from accounts.models import Account, EntryKind
from audit.services import audit_record
from exchange import errors

from . import crypto, events, keycache
from .models import ApiKey, Scope

MAX_ALLOWLIST_ENTRIES = 100


@dataclass(frozen=True)
class CreatedKey:
    """A new key and its one-time credential: ``secret`` (HMAC) or ``private_key`` (an
    Ed25519 seed the server generated; None when the caller registered its own public key)."""

    key: ApiKey
    secret: str | None = None
    private_key: str | None = None


# --- validation (pure; runs before any transaction) ------------------------------------


def clean_scopes(scopes: str | Iterable[str] | None) -> list[str]:
    if isinstance(scopes, str):
        scopes = [part.strip() for part in scopes.split(",") if part.strip()]
    scopes = list(scopes or [])
    unknown = [scope for scope in scopes if scope not in Scope.values]
    if unknown or not scopes:
        raise errors.ValidationError.field(
            "scopes", "invalid", f"scopes must be a non-empty subset of {', '.join(Scope.values)}; got {scopes}."
        )
    return [scope for scope in Scope.values if scope in scopes]  # canonical order, no duplicates


def clean_allowlist(entries: str | Iterable[object] | None) -> list[str]:
    if isinstance(entries, str):
        entries = entries.replace(",", "\n").split()
    cleaned: list[str] = []
    problems: list[str] = []
    for entry in entries or []:
        try:
            network = ipaddress.ip_network(str(entry).strip(), strict=False)
        except ValueError:
            problems.append(str(entry))
            continue
        if str(network) not in cleaned:
            cleaned.append(str(network))
    if problems:
        raise errors.ValidationError.field(
            "ip_allowlist", "invalid_cidr", f"not IP addresses or CIDR networks: {', '.join(problems)}."
        )
    if len(cleaned) > MAX_ALLOWLIST_ENTRIES:
        raise errors.ValidationError.field(
            "ip_allowlist", "too_many", f"at most {MAX_ALLOWLIST_ENTRIES} entries."
        )
    return cleaned


def clean_expiry(expires_at: datetime | None) -> datetime | None:
    if expires_at is None:
        return None
    if timezone.is_naive(expires_at):
        raise errors.ValidationError.field("expires_at", "invalid", "expires_at must carry a time zone.")
    if expires_at <= timezone.now():
        raise errors.ValidationError.field("expires_at", "in_past", "expires_at must be in the future.")
    return expires_at


def _clean_scheme(scheme: str) -> str:
    if scheme not in ApiKey.Scheme.values:
        raise errors.ValidationError.field("scheme", "invalid", "scheme is hmac or ed25519.")
    return scheme


def _build_key(
    *,
    account: Account,
    scheme: str,
    scopes: str | Iterable[str] | None,
    label: str,
    ip_allowlist: str | Iterable[object] | None,
    expires_at: datetime | None,
    public_key: str | None,
) -> tuple[ApiKey, str | None, str | None]:
    """An unsaved key plus its one-time credentials (validation done, nothing written)."""
    scheme = _clean_scheme(scheme)
    fields: dict[str, Any] = {
        "key_id": crypto.new_key_id(),
        "label": (label or "").strip()[:100],
        "account": account,
        "scheme": scheme,
        "scopes": clean_scopes(scopes),
        "ip_allowlist": clean_allowlist(ip_allowlist),
        "expires_at": clean_expiry(expires_at),
    }
    secret: str | None = None
    private_key: str | None = None
    if scheme == ApiKey.Scheme.HMAC:
        if public_key:
            raise errors.ValidationError.field("public_key", "not_allowed", "HMAC keys have no public key.")
        secret = crypto.new_hmac_secret()
        fields["secret_encrypted"] = crypto.encrypt_secret(secret)
    elif public_key:
        try:
            fields["public_key"] = crypto.normalize_ed25519_public_key(public_key)
        except ValueError as exc:
            raise errors.ValidationError.field("public_key", "invalid", f"public_key: {exc}.") from None
    else:
        private_key, fields["public_key"] = crypto.ed25519_generate()
    return ApiKey(**fields), secret, private_key


def _trader_account(account: Account | int) -> Account:
    account_id = account.pk if isinstance(account, Account) else account
    found = Account.objects.filter(pk=account_id).first()
    if found is None:
        raise errors.NotFound(f"Account {account_id} does not exist.")
    if found.kind != Account.Kind.TRADER:
        raise errors.ValidationError.field("account", "system_account", "API keys belong to trader accounts.")
    return found


# --- services -----------------------------------------------------------------------------


def apikey_create(
    *,
    account: Account | int,
    scheme: str = ApiKey.Scheme.HMAC,
    scopes: str | Iterable[str] | None = (Scope.READ,),
    label: str = "",
    ip_allowlist: str | Iterable[object] | None = (),
    expires_at: datetime | None = None,
    public_key: str | None = None,
) -> CreatedKey:
    """Create a key for a trader account.

    HMAC: a random secret is generated, stored encrypted, and returned once in
    ``CreatedKey.secret``. Ed25519: pass the client's ``public_key`` (base64 of 32 bytes or
    PEM); without one a key pair is generated and the seed returned once in
    ``CreatedKey.private_key``.
    """
    with transaction.atomic(durable=True):
        target = _trader_account(account)
        key, secret, private_key = _build_key(
            account=target, scheme=scheme, scopes=scopes, label=label,
            ip_allowlist=ip_allowlist, expires_at=expires_at, public_key=public_key,
        )
        key.save()
        audit_record("apikey.created", target=key, account=target, after=_key_audit(key))
    return CreatedKey(key, secret, private_key)


def _key_audit(key: ApiKey) -> dict[str, object]:
    """What the audit trail keeps of a key: metadata only, never the secret."""
    return {"key_id": key.key_id, "label": key.label, "scheme": key.scheme, "scopes": list(key.scopes),
            "ip_allowlist": list(key.ip_allowlist), "expires_at": key.expires_at}


_UNSET = object()
# Which key-state event a change of each audited field announces (the label announces none).
_UPDATE_EVENTS = {"scopes": "scopes_changed", "ip_allowlist": "allowlist_changed", "expires_at": "expiry_changed"}


def apikey_update(
    *,
    key: ApiKey | str,
    scopes: Any = _UNSET,
    ip_allowlist: Any = _UNSET,
    expires_at: Any = _UNSET,
    label: Any = _UNSET,
) -> ApiKey:
    """Change a key's scopes, IP allowlist, expiry (``None`` clears it) or label.

    Takes effect on the key's next request, and on its open WebSocket and FIX sessions
    within a second (a key-state event, ``apikeys.events``). A revoked key cannot be changed.
    """
    changes: dict[str, object] = {}
    if scopes is not _UNSET:
        changes["scopes"] = clean_scopes(scopes)
    if ip_allowlist is not _UNSET:
        changes["ip_allowlist"] = clean_allowlist(ip_allowlist)
    if expires_at is not _UNSET:
        changes["expires_at"] = clean_expiry(expires_at)
    if label is not _UNSET:
        changes["label"] = (label or "").strip()[:100]
    with transaction.atomic(durable=True):
        locked = _locked(key)
        if locked.status == ApiKey.Status.REVOKED:
            raise errors.ValidationError.field("key", "revoked", f"API key {locked.key_id} is revoked; create a new one.")
        before = _key_audit(locked)
        for field, value in changes.items():
            setattr(locked, field, value)
        if changes:
            locked.save(update_fields=list(changes))
            _forget_cached(locked.key_id)
            after = _key_audit(locked)
            if after != before:
                changed = [name for name in after if after[name] != before[name]]
                audit_record("apikey.scopes_changed", target=locked, account=locked.account_id,
                             before={k: before[k] for k in changed}, after={k: after[k] for k in changed})
                for name, kind in _UPDATE_EVENTS.items():
                    if name in changed:
                        events.publish(kind, [locked.key_id])
    return locked


def _forget_cached(key_id: str) -> None:
    """This process's cached copy of the key goes now and again at commit (a request read
    in between could have cached the old state); other processes' copies expire within
    BOURSE_KEY_CACHE_S."""
    keycache.forget(key_id)
    transaction.on_commit(lambda: keycache.forget(key_id))


def apikey_revoke(*, key: ApiKey | str, reason: str = "") -> ApiKey:
    """Revoke a key: its next request is refused with ``key_revoked`` and its open WebSocket
    and FIX sessions are closed within a second (a key-state event). Idempotent."""
    with transaction.atomic(durable=True):
        locked = _locked(key)
        if locked.status != ApiKey.Status.REVOKED:
            locked.status = ApiKey.Status.REVOKED
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["status", "revoked_at"])
            _forget_cached(locked.key_id)
            audit_record("apikey.revoked", target=locked, account=locked.account_id, after={"key_id": locked.key_id},
                         reason=(reason or "").strip()[:500])
            events.publish("revoked", [locked.key_id])
    return locked


def apikey_secrets_rotate(*, batch_size: int = 500) -> int:
    """Re-encrypt every stored HMAC secret with the newest ``BOURSE_ENCRYPTION_KEYS`` entry.

    Returns the number of keys re-encrypted. One durable transaction per batch, so a large
    table is not locked at once; running it again is harmless.
    """
    done, last_pk = 0, 0
    while True:
        with transaction.atomic(durable=True):
            batch = list(
                ApiKey.objects.select_for_update()
                .filter(scheme=ApiKey.Scheme.HMAC, pk__gt=last_pk)
                .order_by("pk")[:batch_size]
            )
            for key in batch:
                assert key.secret_encrypted is not None  # the database constraint: an HMAC key has its secret
                key.secret_encrypted = crypto.reencrypt(key.secret_encrypted)
                key.save(update_fields=["secret_encrypted"])
        if not batch:
            return done
        done += len(batch)
        last_pk = batch[-1].pk


def _locked(key: ApiKey | str) -> ApiKey:
    lookup: dict[str, object] = {"pk": key.pk} if isinstance(key, ApiKey) else {"key_id": key}
    found = ApiKey.objects.select_for_update().filter(**lookup).first()
    if found is None:
        raise errors.NotFound("No such API key.")
    return found


# --- onboarding -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedTrader:
    account: Account
    credentials: CreatedKey


def trader_create(
    *,
    name: str,
    deposits: Sequence[tuple[str, object]] = (),
    scheme: str = ApiKey.Scheme.HMAC,
    scopes: str | Iterable[str] | None = (Scope.READ, Scope.TRADE),
    label: str = "",
) -> CreatedTrader:
    """A user, its trading account, an API key and opening deposits, all or nothing.

    ``deposits`` are ``(asset, amount)`` pairs; an unknown asset or a bad amount refuses the
    whole call and nothing is created. The deposits are posted with ``ledger.post`` inside
    this one transaction (not through the durable deposit service).
    """
    name = (name or "").strip()
    User = get_user_model()
    max_length = User._meta.get_field("username").max_length
    if not name or (max_length is not None and len(name) > max_length):
        raise errors.ValidationError.field("name", "invalid", "name must be 1-150 characters.")
    with transaction.atomic(durable=True):
        if User.objects.filter(username=name).exists():
            raise errors.ValidationError.field("name", "taken", f"User {name!r} already exists.")
        planned: list[tuple[str, Decimal]] = []
        for asset_code, amount in deposits:
            asset = ledger.get_asset(asset_code)
            planned.append((asset.code, ledger.positive_amount(amount, asset, field=f"deposit {asset.code}")))
        user = User.objects.create_user(username=name)
        user.set_unusable_password()
        user.save(update_fields=["password"])
        account = Account.objects.create(name=name, owner=user, kind=Account.Kind.TRADER)
        key, secret, private_key = _build_key(
            account=account, scheme=scheme, scopes=scopes, label=label or f"{name} (create_trader)",
            ip_allowlist=(), expires_at=None, public_key=None,
        )
        key.save()
        audit_record("account.created", target=account, after={"name": name, "owner": name})
        audit_record("apikey.created", target=key, account=account, after=_key_audit(key))
        external = ledger.system_account(Account.SystemRole.EXTERNAL)
        for asset_code, value in planned:
            journal = ledger.post(
                EntryKind.DEPOSIT,
                ledger.deposit_legs(account.pk, external.pk, asset_code, value),
                reference="create_trader",
                reason="opening deposit",
            )
            audit_record("balance.deposited", target=account, reason="opening deposit",
                         after={"asset": asset_code, "amount": value, "journal_id": journal.pk})
    return CreatedTrader(account, CreatedKey(key, secret, private_key))
