"""``AuditedModelAdmin``: every add, change and delete made through the admin becomes an
audit event (``admin.added`` / ``admin.changed`` / ``admin.deleted``) with the changed
fields' values before and after, written in the admin's own transaction.

Every ModelAdmin in Bourse derives from it (or from ``AuditedAdminMixin`` next to another
base such as ``UserAdmin``), unless every write it makes goes through services that audit
themselves — then it says so with ``audited_by_services = True`` instead (the mixin would
record each change twice). tests/audit/test_admin.py fails for an admin that does neither.
Admin *actions* that change state call services, and the services audit themselves.
Values of fields that look secret are never recorded, only that they changed.
"""
from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.models import LogEntry

from .services import audit_record, jsonable

if TYPE_CHECKING:  # what the mixin is mixed into, for the type checker
    _AdminBase = admin.ModelAdmin[Any]
else:
    _AdminBase = object

SECRET_FIELD = re.compile(r"password|secret|private|token|encrypted", re.IGNORECASE)
REDACTED = "[redacted]"
_DIFFS = "_bourse_audit_diffs"


def _value(name: str, value):
    return REDACTED if SECRET_FIELD.search(name) else jsonable(value)


def form_diff(form) -> tuple[dict, dict]:
    """(before, after) of the fields the form changed."""
    before, after = {}, {}
    for name in form.changed_data:
        before[name] = _value(name, form.initial.get(name))
        after[name] = _value(name, form.cleaned_data.get(name))
    return before, after


def snapshot(obj) -> dict:
    """The concrete field values of ``obj`` (for deletions)."""
    values = {}
    for field in obj._meta.concrete_fields:
        values[field.name] = _value(field.name, field.value_from_object(obj))
    return values


def _summary(message) -> str:
    if isinstance(message, list):
        message = json.dumps(message)
    return LogEntry(change_message=message or "").get_change_message()


class AuditedAdminMixin(_AdminBase):
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        diffs = getattr(request, _DIFFS, None)
        if diffs is None:
            diffs = {}
            setattr(request, _DIFFS, diffs)
        diffs[(obj._meta.label_lower, obj.pk)] = form_diff(form)

    def _pop_diff(self, request, obj) -> tuple[dict | None, dict | None]:
        return getattr(request, _DIFFS, {}).pop((obj._meta.label_lower, obj.pk), (None, None))

    def log_addition(self, request, obj, message):
        entry = super().log_addition(request, obj, message)
        _, after = self._pop_diff(request, obj)
        audit_record("admin.added", target=obj, after=after, reason=_summary(message))
        return entry

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        before, after = self._pop_diff(request, obj)
        audit_record("admin.changed", target=obj, before=before, after=after, reason=_summary(message))
        return entry

    def log_deletions(self, request, queryset):
        entries = super().log_deletions(request, queryset)
        for obj in queryset:
            audit_record("admin.deleted", target=obj, before=snapshot(obj), reason=f"Deleted {obj}.")
        return entries


class AuditedModelAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Base class for Bourse's ModelAdmins."""
