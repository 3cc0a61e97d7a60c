"""Admin for accounts and the ledger. Balances and entries are read-only: money moves only
through the services, here via the fund/debit action that asks for a reason."""
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Q, Sum
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from audit.adminmixins import AuditedModelAdmin
from audit.console import account_console_view
from exchange.adminsearch import LargeTableMixin
from exchange.errors import BourseError
from exchange.syntax import parse_id
from exchange.wire import money

from . import services
from .forms import FundingForm
from .models import Account, Asset, Balance, Journal, LedgerEntry


def account_ids_matching(term: str, limit: int = 100) -> list[int]:
    """The accounts a console search term can name — its id, a part of its name, the start of
    its owner's username, its owner's e-mail — as ids (at most ``limit``), so a search of a
    table written per order looks its rows up by account through that table's index. The
    accounts table is read as a whole here (console search only, across every account): it
    holds a row per customer, not per order."""
    condition = Q(name__icontains=term) | Q(owner__username__istartswith=term) | Q(owner__email__iexact=term)
    number = parse_id(term)
    if number is not None:
        condition |= Q(pk=number)
    return list(Account.objects.filter(condition).order_by("pk").values_list("pk", flat=True)[:limit])


class AtAssetScale:
    """Money columns at the asset's own precision (``"1500.00"`` for a 2-place asset), not the
    storage's 18 decimal places."""

    @admin.display(description="available")
    def available_amount(self, row):
        return money(row.available, row.asset.scale)

    @admin.display(description="locked")
    def locked_amount(self, row):
        return money(row.locked, row.asset.scale)

    @admin.display(description="amount")
    def amount_at_scale(self, row):
        return money(row.amount, row.asset.scale)


class ReadOnlyAdmin(AuditedModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Asset)
class AssetAdmin(AuditedModelAdmin):
    list_display = ("code", "name", "scale")
    search_fields = ("code", "name")

    def get_readonly_fields(self, request, obj=None):
        return ("code", "scale") if obj else ()  # changing a scale would reinterpret stored amounts

    def has_delete_permission(self, request, obj=None):
        return False


class BalanceInline(AtAssetScale, admin.TabularInline):
    model = Balance
    fields = ("asset", "available_amount", "locked_amount", "updated_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Account)
class AccountAdmin(AuditedModelAdmin):
    list_display = ("id", "name", "owner", "kind", "system_role", "created_at", "console_link")
    list_filter = ("kind", "created_at")
    search_fields = ("=id", "name", "owner__username", "owner__email")
    readonly_fields = ("kind", "system_role", "created_at")
    inlines = [BalanceInline]
    actions = ["fund_or_debit"]

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        console = self.admin_site.admin_view(lambda request, object_id: account_console_view(self, request, object_id))
        return [path("<path:object_id>/console/", console, name="accounts_account_console")] + super().get_urls()

    @admin.display(description="console")
    def console_link(self, account):
        return format_html('<a href="{}">balances, orders, audit…</a>', reverse("admin:accounts_account_console", args=[account.pk]))

    @admin.action(description="Fund or debit selected accounts…", permissions=["fund"])
    def fund_or_debit(self, request, queryset):
        form = FundingForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            service = services.balance_deposit if form.cleaned_data["direction"] == "deposit" else services.balance_withdraw
            done = 0
            for account in queryset:
                try:
                    service(
                        account=account,
                        asset=form.cleaned_data["asset"].code,
                        amount=form.cleaned_data["amount"],
                        reason=form.cleaned_data["reason"],
                        reference=f"admin:{request.user.username}",
                        actor=request.user,
                    )
                    done += 1
                except BourseError as exc:
                    self.message_user(request, f"{account}: {exc.detail} ({exc.code})", messages.ERROR)
            if done:
                self.message_user(request, f"Applied to {done} account(s).", messages.SUCCESS)
            return None
        return TemplateResponse(
            request,
            "admin/accounts/account/fund.html",
            {
                **self.admin_site.each_context(request),
                "title": "Fund or debit accounts",
                "form": form,
                "accounts": queryset,
                "opts": self.model._meta,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )

    def has_fund_permission(self, request):
        return request.user.has_perm("accounts.fund_account")  # the Operations role (audit/roles.py)


@admin.register(Balance)
class BalanceAdmin(AtAssetScale, ReadOnlyAdmin):
    list_display = ("account", "asset", "available_amount", "locked_amount", "updated_at")
    fields = ("account", "asset", "available_amount", "locked_amount", "updated_at")
    readonly_fields = fields
    list_filter = ("asset",)
    search_fields = ("=account__id", "account__name", "account__owner__username")
    list_select_related = ("account", "asset")


class EntryInline(AtAssetScale, admin.TabularInline):
    model = LedgerEntry
    fields = ("account", "asset", "bucket", "kind", "amount_at_scale")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Journal)
class JournalAdmin(LargeTableMixin, ReadOnlyAdmin):
    list_display = ("id", "kind", "reference", "created_by", "created_at", "net")
    list_filter = ("kind", "created_at")
    search_help_text = "Exact journal id, reference (order:42, trade:7) or idempotency key."
    inlines = [EntryInline]

    def search_conditions(self, term):
        """Indexed look-ups only (a journal per order): the id, the reference
        (``journal_reference``), the idempotency key (``journal_idempotency_key``)."""
        condition = Q(reference=term) | Q(idempotency_key=term)
        number = parse_id(term)
        return condition | Q(pk=number) if number is not None else condition

    @admin.display(description="Net (always 0)")
    def net(self, journal):
        total = journal.entries.aggregate(total=Sum("amount"))["total"]
        return None if total is None else format(total.normalize(), "f")


@admin.register(LedgerEntry)
class LedgerEntryAdmin(LargeTableMixin, AtAssetScale, ReadOnlyAdmin):
    list_display = ("id", "journal", "account", "asset", "bucket", "kind", "amount_at_scale", "reference", "created_at")
    list_filter = ("kind", "bucket", "asset", "created_at")
    search_help_text = "Account id, name or owner; exact journal id or reference (order:42)."
    list_select_related = ("account", "asset", "journal")

    def search_conditions(self, term):
        """Indexed look-ups only: the accounts the term names (``entry_account_asset_id``), a
        journal by id or by reference (the journal's index, then ``journal_id``)."""
        journals = list(Journal.objects.filter(reference=term).order_by("pk").values_list("pk", flat=True)[:100])
        number = parse_id(term)
        if number is not None:
            journals.append(number)
        return Q(account_id__in=account_ids_matching(term)) | Q(journal_id__in=journals)
