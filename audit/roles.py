"""Console roles as Django groups, declared here as role -> permission codenames.

The migration creates the groups; ``apply_roles`` (run after every ``migrate``) gives each
group exactly the permissions listed, so the map is the single source of truth: a
permission added to a role by hand in the admin is taken away again at the next migrate,
and a model that lands later (orders, fills, API keys) gets its permissions granted by the
first migrate that creates it. Codenames whose model does not exist yet are skipped.

Custom permissions that guard operator actions are created here too (on their model's
content type) when their model exists, so no other app needs a migration for them.
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)

SUPPORT = "Support"
OPERATIONS = "Operations"

# (app_label, model, codename): name — operator actions, all performed through services.
CUSTOM_PERMISSIONS = {
    ("accounts", "account", "fund_account"): "Can fund or debit accounts (with a reason)",
    ("trading", "market", "halt_market"): "Can halt and resume markets",
    ("trading", "order", "cancel_order"): "Can cancel orders on a trader's behalf",
    ("apikeys", "apikey", "revoke_apikey"): "Can revoke API keys",
}

_SUPPORT = [
    "accounts.view_account",
    "accounts.view_asset",
    "accounts.view_balance",
    "accounts.view_journal",
    "accounts.view_ledgerentry",
    "trading.view_market",
    "trading.view_order",
    "trading.view_fill",
    "trading.view_trade",
    "apikeys.view_apikey",
    "audit.view_auditevent",
    "audit.export_auditevent",
]

ROLES: dict[str, list[str]] = {
    # Reads everything a support case needs; changes nothing; never sees secrets (the
    # API key admin shows metadata only).
    SUPPORT: _SUPPORT,
    # Support, plus the operator actions — each through a service, each audited.
    OPERATIONS: _SUPPORT
    + ["accounts.fund_account", "trading.halt_market", "trading.cancel_order", "apikeys.revoke_apikey"],
}


def _content_type(apps, app_label: str, model: str):
    try:
        apps.get_model(app_label, model)
    except LookupError:
        return None
    ContentType = apps.get_model("contenttypes", "ContentType")
    content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
    return content_type


def ensure_custom_permissions(apps) -> None:
    Permission = apps.get_model("auth", "Permission")
    for (app_label, model, codename), name in CUSTOM_PERMISSIONS.items():
        content_type = _content_type(apps, app_label, model)
        if content_type is not None:
            Permission.objects.get_or_create(content_type=content_type, codename=codename, defaults={"name": name})


def apply_roles(apps) -> dict[str, list[str]]:
    """Create the groups if missing and set each one's permissions to exactly the map's
    (those that exist). Returns the codenames skipped per role, for logging and tests."""
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ensure_custom_permissions(apps)
    skipped: dict[str, list[str]] = {}
    for role, names in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for name in names:
            app_label, codename = name.split(".", 1)
            found = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if found is None:
                skipped.setdefault(role, []).append(name)
            else:
                wanted.append(found)
        group.permissions.set(wanted)
    if skipped:
        log.debug("roles: permissions of models not created yet: %s", skipped)
    return skipped


def apply_roles_after_migrate(sender, app_config=None, using="default", apps=None, **kwargs) -> None:
    """post_migrate receiver; runs once per migrate (when the audit app's turn comes)."""
    if sender is None or sender.name != "audit":
        return
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    apps = apps or global_apps
    # Apps listed after ``audit`` get their post_migrate turn later; make sure every
    # model's default permissions exist now (idempotent: Django skips existing ones).
    for config in global_apps.get_app_configs():
        create_permissions(config, verbosity=0, using=using, apps=apps)
    apply_roles(apps)
