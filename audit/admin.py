"""The audit trail in the console: a read-only list for everyone (superusers included),
searchable by actor, action, target and request id, filterable by action, actor kind,
outcome and date, with a streaming CSV export of exactly the filtered list.

Also re-registers Django's own User and Group admins with auditing, since who may log in
and who holds which role are the changes an audit trail exists for.
"""
from __future__ import annotations

import csv
import datetime as dt
import json

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import StreamingHttpResponse
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html

from exchange.adminsearch import LargeTableMixin, distinct_leading
from exchange.syntax import parse_id
from exchange.wire import timestamp

from .actions import ACTIONS
from .adminmixins import AuditedAdminMixin
from .models import ActorKind, AuditEvent
from .services import audit_record

CSV_COLUMNS = (
    "id", "seq", "created_at", "actor_type", "actor_id", "actor_label", "action", "target_type", "target_id",
    "account_id", "outcome", "reason", "source_ip", "request_id", "before", "after", "hash",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> str:
    """A CSV cell that a spreadsheet will show as text, never run as a formula (values
    such as usernames typed at a failed log-in come from outside)."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True)
    text = timestamp(value) if hasattr(value, "astimezone") else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


class _Echo:
    def write(self, value):
        return value


class ActionFilter(admin.SimpleListFilter):
    """Filter by action from the catalogue (no scan of the table for distinct values)."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request, model_admin):
        return [(name, name) for name in sorted(ACTIONS)]

    def queryset(self, request, queryset):
        return queryset.filter(action=self.value()) if self.value() else queryset


@admin.register(AuditEvent)
class AuditEventAdmin(LargeTableMixin, admin.ModelAdmin):
    list_display = ("time", "actor_display", "action", "target_link", "account_link", "outcome", "request_id", "source_ip")
    list_display_links = ("time",)
    list_filter = (ActionFilter, "actor_type", "outcome", "created_at")
    # One box for request id, actor, action, target and account, as support staff ask; each
    # look-up reads an index of the trail (exchange/adminsearch.py: Django's own search
    # compared UPPER(column) for every row, reading the whole table on every search).
    search_help_text = ("Exact request id, key id, target id or type, or account id; the start of a username "
                        "or of an action (order.).")
    list_per_page = 100
    actions = None
    fields = (
        "created_at", "actor_type", "actor_id", "actor_label", "action", "action_description", "target_type",
        "target_id", "account_id", "outcome", "reason", "before_pretty", "after_pretty", "source_ip", "request_id",
        "seq", "prev_hash", "hash", "sealed_at",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("seal")  # the seal's columns, in the same query

    def search_conditions(self, term: str) -> Q:
        """What one term can mean, each an indexed look-up: the request id
        (``audit_request_id``); an actor's id, a key id or a user's pk (``audit_actor``, every
        actor kind named so the index's leading column is bound); the users whose username
        starts with it (the users table, then ``audit_actor`` by their pk: an event is found
        by the user's current name); the catalogue's actions starting with it
        (``audit_action``); a target's type, or its id under each target type in the trail
        (``audit_target``, the types read by a loose scan of that index); an account id
        (``audit_account_id``)."""
        condition = (Q(request_id=term) | Q(actor_type__in=ActorKind.values, actor_id=term) | Q(target_type=term)
                     | Q(target_type__in=distinct_leading(AuditEvent, "target_type"), target_id=term))
        folded = term.casefold()
        actions = [action for action in ACTIONS if action.casefold().startswith(folded)]
        if actions:
            condition |= Q(action__in=actions)
        users = [str(pk) for pk in User.objects.filter(username__istartswith=term).order_by("pk")
                 .values_list("pk", flat=True)[:100]]
        if users:
            condition |= Q(actor_type=ActorKind.USER, actor_id__in=users)
        account = parse_id(term)
        if account is not None:
            condition |= Q(account_id=account)
        return condition

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="time (UTC)", ordering="id")
    def time(self, event):
        return event.created_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description="actor", ordering="actor_label")
    def actor_display(self, event):
        return event.actor_display

    @admin.display(description="target")
    def target_link(self, event):
        if not event.target_type:
            return ""
        return format_html(
            '<a href="?target_type={}&amp;target_id={}">{}</a>', event.target_type, event.target_id, event.target_display
        )

    @admin.display(description="account", ordering="account_id")
    def account_link(self, event):
        if event.account_id is None:
            return ""
        return format_html('<a href="../../accounts/account/{}/console/">{}</a>', event.account_id, event.account_id)

    @admin.display(description="what it means")
    def action_description(self, event):
        return ACTIONS.get(event.action, "")

    @admin.display(description="before")
    def before_pretty(self, event):
        return format_html("<pre>{}</pre>", json.dumps(event.before, indent=2, sort_keys=True)) if event.before is not None else "—"

    @admin.display(description="after")
    def after_pretty(self, event):
        return format_html("<pre>{}</pre>", json.dumps(event.after, indent=2, sort_keys=True)) if event.after is not None else "—"

    def get_urls(self):
        return [
            path("export.csv", self.admin_site.admin_view(self.export_view), name="audit_auditevent_export"),
        ] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_export": request.user.has_perm("audit.export_auditevent")}
        return super().changelist_view(request, extra_context)

    def export_view(self, request):
        """The current filtered list (same query string as the list page), as CSV."""
        if not request.user.has_perm("audit.export_auditevent"):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        queryset = changelist.get_queryset(request).order_by("id")
        audit_record("audit.exported", target=("audit.auditevent", ""), after={"query": request.GET.urlencode()})
        writer = csv.writer(_Echo())

        def rows():
            yield writer.writerow(CSV_COLUMNS)
            for event in queryset.iterator(chunk_size=2000):
                yield writer.writerow([csv_cell(getattr(event, column)) for column in CSV_COLUMNS])

        filename = f"audit-{timezone.now():%Y%m%dT%H%M%SZ}.csv"
        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


# Django's own admins for users and groups, with auditing.
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class AuditedUserAdmin(AuditedAdminMixin, UserAdmin):
    pass


@admin.register(Group)
class AuditedGroupAdmin(AuditedAdminMixin, GroupAdmin):
    pass
