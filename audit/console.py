"""The per-account console page: everything support needs about one trading account on
one page — balances, open orders, recent fills, API keys and its audit history.

Each part is an ``AccountSection`` registered with ``register_account_section``, shown only
to users holding its permission. This module knows no other app: each app registers its own
sections from its ``console`` module (imported by its AppConfig.ready), e.g.::

    register_account_section(AccountSection(
        key="open_orders", title="Open orders", permission="trading.view_order",
        columns=("Order", "Market", "Side", "Price", "Remaining", "Status"),
        rows=lambda account, limit: [...],
        more_url=lambda account: f"{reverse('admin:trading_order_changelist')}?account__id__exact={account.pk}",
    ))
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from django.db.models import Model
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from exchange.wire import rate, timestamp

from .selectors import audit_events_for_account


@dataclass(frozen=True)
class AccountSection:
    key: str
    title: str
    permission: str
    columns: Sequence[str]
    rows: Callable[[object, int], Iterable[Sequence]]
    more_url: Callable[[Model], str] | None = None
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


# --- Helpers for the apps' sections -------------------------------------------------------


def decimal_text(value) -> str:
    """A stored decimal as the console shows it (empty for none)."""
    return "" if value is None else rate(value)


def link(viewname: str, obj_id, text) -> str:
    """A link to the admin page ``viewname`` of object ``obj_id``."""
    return format_html('<a href="{}">{}</a>', reverse(viewname, args=[obj_id]), text)


def changelist_url(viewname: str, account) -> str:
    """An admin change list filtered to ``account``."""
    return f"{reverse(viewname)}?account__id__exact={account.pk}"


# --- This app's section --------------------------------------------------------------------


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
        key="audit",
        title="Audit history",
        permission="audit.view_auditevent",
        columns=("Time", "Actor", "Action", "Outcome", "Reason", "Request id"),
        rows=_audit_rows,
        more_url=lambda account: f"{reverse('admin:audit_auditevent_changelist')}?account_id={account.pk}",
        order=90,
    )
)
