"""This app's section of the per-account console page (``audit.console``)."""
from __future__ import annotations

from audit.console import AccountSection, changelist_url, link, register_account_section
from exchange.wire import timestamp

from .models import ApiKey


def _key_rows(account, limit):
    # Metadata only: the encrypted secret is never read here.
    keys = ApiKey.objects.filter(account=account).only(
        "pk", "key_id", "label", "scheme", "scopes", "ip_allowlist", "status", "expires_at", "last_used_at"
    )
    for key in keys.order_by("-id")[:limit]:
        yield (
            link("admin:apikeys_apikey_change", key.pk, key.key_id),
            key.label,
            key.scheme,
            ", ".join(key.scopes),
            ", ".join(key.ip_allowlist) or "any",
            key.status,
            timestamp(key.expires_at) or "never",
            timestamp(key.last_used_at) or "never",
        )


def register() -> None:
    register_account_section(
        AccountSection(
            key="api_keys",
            title="API keys",
            permission="apikeys.view_apikey",
            columns=("Key id", "Label", "Scheme", "Scopes", "IP allowlist", "Status", "Expires", "Last used"),
            rows=_key_rows,
            more_url=lambda account: changelist_url("admin:apikeys_apikey_changelist", account),
            order=40,
        )
    )
