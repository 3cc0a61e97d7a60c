"""This app's sections of the per-account console page (``audit.console``)."""
from __future__ import annotations

from django.urls import reverse

from audit.console import AccountSection, register_account_section
from exchange.wire import money, timestamp

from .models import Balance


def _balance_rows(account, limit):
    for balance in Balance.objects.filter(account=account).select_related("asset").order_by("asset_id")[:limit]:
        scale = balance.asset.scale
        yield (
            balance.asset_id,
            money(balance.available, scale),
            money(balance.locked, scale),
            money(balance.total, scale),
            timestamp(balance.updated_at),
        )


def register() -> None:
    register_account_section(
        AccountSection(
            key="balances",
            title="Balances",
            permission="accounts.view_balance",
            columns=("Asset", "Available", "Locked", "Total", "Updated"),
            rows=_balance_rows,
            more_url=lambda account: f"{reverse('admin:accounts_balance_changelist')}?account__id__exact={account.pk}",
            order=10,
        )
    )
