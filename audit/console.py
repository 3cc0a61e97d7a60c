"""The per-account console page: everything support needs about one trading account on
one page — balances, open orders, recent fills, API keys and its audit history.

Each part is an ``AccountSection`` registered with ``register_account_section``, shown only
to users holding its permission. The sections below are registered only for models that
exist; another app adds its own from its admin module, e.g.::

    register_account_section(AccountSection(
        key="open_orders", title="Open orders", permission="trading.view_order",
        columns=("Order", "Market", "Side", "Price", "Remaining", "Status"),
        rows=lambda account, limit: [...],
        more_url=lambda account: f"{reverse('admin:trading_order_changelist')}?account__id__exact={account.pk}",
    ))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from django.apps import apps
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from exchange.wire import money, rate, timestamp

from .selectors import audit_events_for_account


@dataclass(frozen=True)
class AccountSection:
    key: str
    title: str
    permission: str
    columns: Sequence[str]
    rows: Callable[[object, int], Iterable[Sequence]]
    more_url: Callable[[object], str] | None = None
    order: int = 100
    limit: int = 50


_SECTIONS: dict[str, AccountSection] = {}


def register_account_section(section: AccountSection) -> None:
    """Add (or replace, by ``key``) a section of the account console page."""
    _SECTIONS[section.key] = section


def account_sections() -> list[AccountSection]:
    return sorted(_SECTIONS.values(), key=lambda section: (section.order, section.key))


def account_console_view(model_admin, request, object_id):
    """The console page for one account (wired into ``AccountAdmin.get_urls``)."""
    from django.core.exceptions import PermissionDenied

    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    account = get_object_or_404(model_admin.get_queryset(request), pk=object_id)
    sections = []
    for section in account_sections():
        if not request.user.has_perm(section.permission):
            continue
        sections.append(
            {
                "key": section.key,
                "title": section.title,
                "columns": section.columns,
                "rows": [list(row) for row in section.rows(account, section.limit)],
                "more_url": section.more_url(account) if section.more_url else None,
            }
        )
    opts = model_admin.model._meta
    return TemplateResponse(
        request,
        "admin/accounts/account/console.html",
        {
            **model_admin.admin_site.each_context(request),
            "title": f"Account {account.pk}: {account.name}",
            "subtitle": None,
            "opts": opts,
            "original": account,
            "account": account,
            "sections": sections,
            "has_view_permission": True,
        },
    )


# --- Sections owned by this app and by accounts (which exist today) ----------------------


def _balance_rows(account, limit):
    from accounts.models import Balance

    for balance in Balance.objects.filter(account=account).select_related("asset").order_by("asset_id")[:limit]:
        scale = balance.asset.scale
        yield (
            balance.asset_id,
            _money(balance.available, scale),
            _money(balance.locked, scale),
            _money(balance.total, scale),
            timestamp(balance.updated_at),
        )


def _money(value, scale):
    return money(value, scale)


def _decimal(value):
    return "" if value is None else rate(value)


def _link(viewname: str, obj_id, text) -> str:
    return format_html('<a href="{}">{}</a>', reverse(viewname, args=[obj_id]), text)


def _order_rows(account, limit):
    Order = apps.get_model("trading", "Order")
    orders = Order.objects.filter(account=account, status__in=Order.LIVE_STATUSES).select_related("market")
    for order in orders.order_by("-id")[:limit]:
        yield (
            _link("admin:trading_order_change", order.pk, order.pk),
            order.client_order_id or "",
            order.market.symbol,
            order.side,
            order.type,
            _decimal(order.price),
            _decimal(order.quantity),
            _decimal(order.filled_quantity),
            order.status,
            timestamp(order.created_at),
        )


def _fill_rows(account, limit):
    Fill = apps.get_model("trading", "Fill")
    for fill in Fill.objects.filter(account=account).select_related("market", "order").order_by("-id")[:limit]:
        yield (
            _link("admin:trading_fill_change", fill.pk, fill.pk),
            _link("admin:trading_order_change", fill.order_id, fill.order_id),
            fill.order.client_order_id or "",
            fill.market.symbol,
            fill.side,
            _decimal(fill.price),
            _decimal(fill.quantity),
            f"{_decimal(fill.fee)} {fill.fee_asset_id}",
            fill.liquidity,
            "yes" if fill.settled else "no",
            timestamp(fill.created_at),
        )


def _key_rows(account, limit):
    # Metadata only: the encrypted secret is never read here.
    ApiKey = apps.get_model("apikeys", "ApiKey")
    keys = ApiKey.objects.filter(account=account).only(
        "pk", "key_id", "label", "scheme", "scopes", "ip_allowlist", "status", "expires_at", "last_used_at"
    )
    for key in keys.order_by("-id")[:limit]:
        yield (
            _link("admin:apikeys_apikey_change", key.pk, key.key_id),
            key.label,
            key.scheme,
            ", ".join(key.scopes),
            ", ".join(key.ip_allowlist) or "any",
            key.status,
            timestamp(key.expires_at) or "never",
            timestamp(key.last_used_at) or "never",
        )


def _changelist(viewname: str, account) -> str:
    return f"{reverse(viewname)}?account__id__exact={account.pk}"


def _model_exists(app_label: str, model: str) -> bool:
    try:
        apps.get_model(app_label, model)
    except LookupError:
        return False
    return True


def _audit_rows(account, limit):
    changelist = reverse("admin:audit_auditevent_changelist")
    for event in audit_events_for_account(account.pk, limit=limit):
        yield (
            format_html('<a href="{}">{}</a>', reverse("admin:audit_auditevent_change", args=[event.pk]), timestamp(event.created_at)),
            event.actor_display,
            event.action,
            event.outcome,
            event.reason,
            format_html('<a href="{}?request_id={}">{}</a>', changelist, event.request_id, event.request_id)
            if event.request_id
            else "",
        )


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
register_account_section(
    AccountSection(
        key="audit",
        title="Audit history",
        permission="audit.view_auditevent",
        columns=("Time", "Actor", "Action", "Outcome", "Reason", "Request id"),
        rows=_audit_rows,
        more_url=lambda account: f"{reverse('admin:audit_auditevent_changelist')}?account_id={account.pk}",
        order=90,
    )
)
if _model_exists("trading", "Order"):
    register_account_section(
        AccountSection(
            key="open_orders",
            title="Open orders",
            permission="trading.view_order",
            columns=("Order", "Client order id", "Market", "Side", "Type", "Price", "Quantity", "Filled", "Status", "Created"),
            rows=_order_rows,
            more_url=lambda account: _changelist("admin:trading_order_changelist", account),
            order=20,
        )
    )
if _model_exists("trading", "Fill"):
    register_account_section(
        AccountSection(
            key="recent_fills",
            title="Recent fills",
            permission="trading.view_fill",
            columns=("Fill", "Order", "Client order id", "Market", "Side", "Price", "Quantity", "Fee", "Liquidity", "Settled", "Time"),
            rows=_fill_rows,
            more_url=lambda account: _changelist("admin:trading_fill_changelist", account),
            order=30,
        )
    )
if _model_exists("apikeys", "ApiKey"):
    register_account_section(
        AccountSection(
            key="api_keys",
            title="API keys",
            permission="apikeys.view_apikey",
            columns=("Key id", "Label", "Scheme", "Scopes", "IP allowlist", "Status", "Expires", "Last used"),
            rows=_key_rows,
            more_url=lambda account: _changelist("admin:apikeys_apikey_changelist", account),
            order=40,
        )
    )
