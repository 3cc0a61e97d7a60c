"""Append-only, tamper-evident audit trail, the console roles, and the console itself
(the admin site with a throttled log-in; the per-account page; the audit list)."""
from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self):
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from . import login, roles

        post_migrate.connect(roles.apply_roles_after_migrate, dispatch_uid="audit.apply_roles")
        user_logged_in.connect(login.on_logged_in, dispatch_uid="audit.login")
        user_login_failed.connect(login.on_login_failed, dispatch_uid="audit.login_failed")

