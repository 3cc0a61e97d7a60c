"""Roles: Support reads every listed page and changes nothing; Operations does the
operator actions, through the services, audited."""
from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group, Permission

from accounts import services as accounts_services
from accounts.models import Asset, Balance, Journal
from audit import roles
from audit.models import AuditEvent
from audit.services import audit_record, audit_seal

pytestmark = pytest.mark.django_db


def perms(group_name: str) -> set[str]:
    group = Group.objects.get(name=group_name)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}


def existing(names):
    return {name for name in names if Permission.objects.filter(
        content_type__app_label=name.split(".")[0], codename=name.split(".")[1]).exists()}


def test_groups_hold_exactly_the_mapped_permissions_that_exist():
    for role, names in roles.ROLES.items():
        assert perms(role) == existing(names)
    assert "accounts.fund_account" in perms("Operations") and "accounts.fund_account" not in perms("Support")
    assert not any(p.split(".")[1].startswith(("add_", "change_", "delete_")) for p in perms("Operations"))


def test_reapplying_removes_permissions_added_by_hand_and_is_idempotent():
    support = Group.objects.get(name="Support")
    support.permissions.add(Permission.objects.get(codename="change_market"))
    roles.apply_roles(apps)
    roles.apply_roles(apps)
    assert "trading.change_market" not in perms("Support")
    assert perms("Support") == existing(roles.ROLES["Support"])


def test_permissions_of_models_not_there_yet_are_skipped(monkeypatch):
    monkeypatch.setitem(roles.ROLES, "Support", roles.ROLES["Support"] + ["ghosts.view_ghost"])
    skipped = roles.apply_roles(apps)
    assert skipped["Support"] == ["ghosts.view_ghost"]
    assert perms("Support") == existing(roles.ROLES["Support"])


def test_custom_permissions_exist_for_models_that_exist():
    assert Permission.objects.filter(content_type__app_label="accounts", codename="fund_account").exists()
    assert Permission.objects.filter(content_type__app_label="trading", codename="halt_market").exists()


# --- Support -------------------------------------------------------------------------------


def support_pages(trader, market):
    event = audit_record("account.created", target=trader)
    journal = accounts_services.balance_deposit(account=trader, asset="USD", amount="5", reason="seed")
    pages = [
        "/admin/",
        "/admin/accounts/account/",
        f"/admin/accounts/account/{trader.pk}/change/",
        f"/admin/accounts/account/{trader.pk}/console/",
        "/admin/accounts/asset/",
        "/admin/accounts/balance/",
        "/admin/accounts/journal/",
        f"/admin/accounts/journal/{journal.pk}/change/",
        "/admin/accounts/ledgerentry/",
        "/admin/trading/market/",
        f"/admin/trading/market/{market.pk}/change/",
        "/admin/audit/auditevent/",
        f"/admin/audit/auditevent/{event.pk}/change/",
        "/admin/audit/auditevent/export.csv",
    ]
    # Orders, fills, trades and API keys, once their admins exist.
    for model_admin in admin.site._registry.values():
        opts = model_admin.model._meta
        if f"{opts.app_label}.view_{opts.model_name}" in roles.ROLES["Support"]:
            pages.append(f"/admin/{opts.app_label}/{opts.model_name}/")
    return sorted(set(pages))


def test_support_can_view_every_listed_page(support_client, trader, market, usd):
    for url in support_pages(trader, market):
        response = support_client.get(url)
        assert response.status_code == 200, url


def test_support_cannot_change_anything(support_client, trader, market, usd):
    accounts_services.balance_deposit(account=trader, asset="USD", amount="5")
    before = AuditEvent.objects.count()
    attempts = [
        ("/admin/accounts/account/add/", {"name": "x", "kind": "trader"}),
        (f"/admin/accounts/account/{trader.pk}/change/", {"name": "renamed"}),
        ("/admin/accounts/asset/add/", {"code": "EUR", "scale": "2"}),
        (f"/admin/trading/market/{market.pk}/change/", {"tick_size": "1"}),
        (f"/admin/audit/auditevent/{AuditEvent.objects.first().pk}/change/", {"reason": "x"}),
        (f"/admin/audit/auditevent/{AuditEvent.objects.first().pk}/delete/", {"post": "yes"}),
        ("/admin/auth/group/add/", {"name": "Support2"}),
    ]
    for url, data in attempts:
        assert support_client.post(url, data).status_code == 403, url

    # Operator actions are not offered and do nothing when posted anyway.
    response = support_client.post("/admin/accounts/account/", {
        "action": "fund_or_debit", "_selected_action": [trader.pk], "apply": "1",
        "direction": "deposit", "asset": "USD", "amount": "100", "reason": "not allowed"})
    assert response.status_code in (200, 302)
    support_client.post("/admin/trading/market/", {"action": "halt", "_selected_action": [market.pk]})

    trader.refresh_from_db()
    market.refresh_from_db()
    assert trader.name != "renamed" and market.status == "open" and market.tick_size == Decimal("0.01")
    assert Journal.objects.count() == 1 and not Asset.objects.filter(code="EUR").exists()
    assert Balance.objects.get(account=trader).available == Decimal("5")
    assert AuditEvent.objects.count() == before  # nothing changed, nothing audited


def test_support_sees_no_operator_actions(support_client, trader):
    response = support_client.get("/admin/accounts/account/")
    assert b"fund_or_debit" not in response.content
    response = support_client.get("/admin/trading/market/")
    assert b'value="halt"' not in response.content


# --- Operations ------------------------------------------------------------------------------


def test_operations_funds_and_debits_with_reason_audited(operations_client, operations_user, trader, usd):
    common = {"action": "fund_or_debit", "_selected_action": [trader.pk], "apply": "1", "asset": "USD"}
    operations_client.post("/admin/accounts/account/", {**common, "direction": "deposit", "amount": "250", "reason": "wire received #77"},
                           HTTP_X_REQUEST_ID="req-fund")
    operations_client.post("/admin/accounts/account/", {**common, "direction": "withdraw", "amount": "50", "reason": "withdrawal #78"},
                           HTTP_X_REQUEST_ID="req-debit")

    assert Balance.objects.get(account=trader, asset=usd).available == Decimal("200")
    deposit = AuditEvent.objects.get(action="balance.deposited")
    withdrawal = AuditEvent.objects.get(action="balance.withdrawn")
    for event, request_id, reason in ((deposit, "req-fund", "wire received #77"), (withdrawal, "req-debit", "withdrawal #78")):
        assert (event.actor_type, event.actor_label, event.account_id) == ("user", operations_user.username, trader.pk)
        assert (event.request_id, event.reason, event.source_ip) == (request_id, reason, "127.0.0.1")


def test_operations_refused_debit_is_audited_as_refused(operations_client, trader, usd):
    operations_client.post("/admin/accounts/account/", {
        "action": "fund_or_debit", "_selected_action": [trader.pk], "apply": "1", "asset": "USD",
        "direction": "withdraw", "amount": "1", "reason": "no money here"})
    event = AuditEvent.objects.get(action="balance.withdrawn")
    assert event.outcome == "refused" and event.reason.startswith("insufficient_balance")
    assert not Journal.objects.exists()


def test_operations_halts_and_resumes_markets_audited(operations_client, operations_user, market):
    operations_client.post("/admin/trading/market/", {"action": "halt", "_selected_action": [market.pk]}, HTTP_X_REQUEST_ID="req-halt")
    market.refresh_from_db()
    assert market.status == "halted"
    operations_client.post("/admin/trading/market/", {"action": "resume", "_selected_action": [market.pk]})
    market.refresh_from_db()
    assert market.status == "open"

    halted, resumed = AuditEvent.objects.filter(action__startswith="market.").order_by("id")
    assert (halted.action, halted.actor_label, halted.request_id) == ("market.halted", operations_user.username, "req-halt")
    assert resumed.action == "market.resumed"


def test_operations_cannot_edit_market_filters_or_audit_rows(operations_client, market):
    assert operations_client.post(f"/admin/trading/market/{market.pk}/change/", {"tick_size": "1"}).status_code == 403
    event = audit_record("market.created", target=market)
    audit_seal()
    assert operations_client.post(f"/admin/audit/auditevent/{event.pk}/change/", {"reason": "x"}).status_code == 403


def test_operations_can_cancel_orders_and_support_cannot(operations_client, support_client, trader, market, usd):
    from trading.models import Command
    from trading.services import order_submit

    accounts_services.balance_deposit(account=trader, asset="USD", amount="1000")
    order = order_submit(account=trader, market=market.symbol, side="buy", type="limit", quantity="1", price="10.00").order
    action = {"action": "cancel_orders", "_selected_action": [order.pk]}

    support_client.post("/admin/trading/order/", action)
    assert not Command.objects.filter(order=order, kind="cancel").exists()

    operations_client.post("/admin/trading/order/", action)
    assert Command.objects.filter(order=order, kind="cancel").count() == 1  # queued for the engine, via the service
