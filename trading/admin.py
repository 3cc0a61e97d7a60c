"""Admin for markets: filter edits and status changes go through the market services."""
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q

from accounts.admin import ReadOnlyAdmin, account_ids_matching  # orders, trades, fills change only through the services
from accounts.models import Account
from exchange import errors
from exchange.adminsearch import LargeTableMixin
from exchange.errors import BourseError
from exchange.syntax import parse_id

from . import services
from .models import Fill, Market, Order, ReconciliationReport, Trade


class MarketForm(forms.ModelForm):
    """The console's market form: its checks are the services' (``market_changes_check`` on an
    edit, the filter rules of ``market_create`` on an add), shown on the page as form errors."""

    class Meta:
        model = Market
        fields = ("symbol",) + services.FILTER_FIELDS

    def clean(self):
        data = super().clean()
        assert data is not None  # ModelForm.clean returns cleaned_data
        if self.errors:
            return data
        values = {field: data[field] for field in services.FILTER_FIELDS if field in data}
        try:
            if self.instance.pk:
                services.market_changes_check(self.instance, **values)
            else:
                services.market_create_check(symbol=data.get("symbol", ""), **values)
        except BourseError as exc:
            for problem in exc.errors or [{"field": None, "message": exc.detail}]:
                field = problem.get("field")
                self.add_error(field if field in self.fields else None, problem["message"])
        return data


@admin.register(Market)
class MarketAdmin(admin.ModelAdmin):
    list_display = ("symbol", "base", "quote", "status", "tick_size", "lot_size", "min_notional", "max_price",
                    "max_quantity", "max_notional", "maker_fee_rate", "taker_fee_rate")
    list_filter = ("status",)
    search_fields = ("symbol",)
    form = MarketForm
    readonly_fields = ("status", "created_at")
    actions = ["halt", "resume"]
    # Adds go through market_create and edits through market_update, which audit
    # (`market.created`, `market.updated`) and make the checks the form shows.
    audited_by_services = True

    def get_fields(self, request, obj=None):
        if obj is None:  # base and quote come from the symbol, as with `create_market`
            return ("symbol",) + services.FILTER_FIELDS
        return ("symbol", "base", "quote") + services.FILTER_FIELDS + self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        # Base and quote define what resting orders mean; they never change after creation.
        return self.readonly_fields + (("symbol", "base", "quote") if obj else ())

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # ModelAdmin wraps this in transaction.atomic; the market services open their own
        # durable transaction, which must not nest, and are the only write the page makes.
        return self._changeform_view(request, object_id, form_url, extra_context)  # type: ignore[attr-defined]  # ModelAdmin's private unwrapped view, absent from the stubs

    def save_model(self, request, obj, form, change):
        values = {field: form.cleaned_data[field] for field in services.FILTER_FIELDS}
        try:
            if change:
                market = services.market_update(symbol=obj.symbol, actor=request.user, **values)
            else:
                market, created = services.market_create(symbol=form.cleaned_data["symbol"], **values)
                if not created:
                    raise errors.ValidationError.field("symbol", "exists", f"{market.symbol} already exists.")
        except BourseError as exc:  # lost a race with an order or another edit since the form's check
            if obj.pk is None:  # nothing was created: no page to show it on
                raise PermissionDenied(f"{exc.detail} ({exc.code})") from None
            self.message_user(request, f"{exc.detail} ({exc.code})", messages.ERROR)
            obj.refresh_from_db()
            return
        obj.pk = market.pk
        obj.refresh_from_db()

    def has_delete_permission(self, request, obj=None):
        return False

    def _set_status(self, request, queryset, status):
        for market in queryset:
            services.market_set_status(symbol=market.symbol, status=status, actor=request.user)
        self.message_user(request, f"{queryset.count()} market(s) now {status}.", messages.SUCCESS)

    def has_halt_permission(self, request):
        return request.user.has_perm("trading.halt_market")  # the Operations role (audit/roles.py)

    @admin.action(description="Halt selected markets", permissions=["halt"])
    def halt(self, request, queryset):
        self._set_status(request, queryset, Market.Status.HALTED)

    @admin.action(description="Resume selected markets", permissions=["halt"])
    def resume(self, request, queryset):
        self._set_status(request, queryset, Market.Status.OPEN)


def orders_by_client_order_id(term: str, limit: int = 100) -> list[int]:
    """The orders whose client order id is ``term``, as ids. Client order ids are unique per
    account (``order_client_id_unique_per_account``, which leads with the account), so the
    look-up names every account: one probe of that index per account, in its own query so the
    planner can choose it (beside other conditions in one OR it would read the whole table)."""
    if len(term) > (Order._meta.get_field("client_order_id").max_length or 0):
        return []
    return list(Order.objects.filter(client_order_id=term, account_id__in=Account.objects.values("pk"))
                .order_by("pk").values_list("pk", flat=True)[:limit])


@admin.register(Order)
class OrderAdmin(LargeTableMixin, ReadOnlyAdmin):
    list_display = ("id", "client_order_id", "account", "market", "side", "type", "price", "quantity",
                    "filled_quantity", "status", "created_at")
    # No date hierarchy: its links are made from the distinct dates of every order (a pass over
    # the table on each page); the created_at filter gives the same ranges.
    list_filter = ("status", "market", "side", "type", "time_in_force", "created_at")
    search_help_text = "Exact order id or client order id; account id, name or owner."
    list_select_related = ("account", "market")
    actions = ["cancel_orders"]

    def search_conditions(self, term):
        """Indexed look-ups only: the id, the accounts the term names
        (``order_account_market_status``), and the orders with that client order id
        (``orders_by_client_order_id``)."""
        condition = Q(account_id__in=account_ids_matching(term)) | Q(pk__in=orders_by_client_order_id(term))
        number = parse_id(term)
        return condition | Q(pk=number) if number is not None else condition

    def has_cancel_permission(self, request):
        return request.user.has_perm("trading.cancel_order")  # the Operations role

    @admin.action(description="Cancel selected orders (through the engine)", permissions=["cancel"])
    def cancel_orders(self, request, queryset):
        queued = 0
        for order in queryset.select_related("account"):
            try:
                services.order_cancel(account=order.account, order_id=order.pk, reason="operator")
                queued += 1
            except BourseError as exc:
                self.message_user(request, f"order {order.pk}: {exc.detail} ({exc.code})", messages.WARNING)
        if queued:
            self.message_user(request, f"Cancel queued for {queued} order(s).", messages.SUCCESS)


@admin.register(Trade)
class TradeAdmin(LargeTableMixin, ReadOnlyAdmin):
    list_display = ("id", "market", "price", "quantity", "taker_side", "taker_order", "maker_order", "settled", "created_at")
    list_filter = ("market", "settled", "created_at")
    search_help_text = "Exact trade id, or an order id (taker or maker)."
    list_select_related = ("market",)

    def search_conditions(self, term):
        number = parse_id(term)
        if number is None:
            return Q(pk__in=[])
        return Q(pk=number) | Q(taker_order_id=number) | Q(maker_order_id=number)


@admin.register(Fill)
class FillAdmin(LargeTableMixin, ReadOnlyAdmin):
    list_display = ("id", "trade", "order", "account", "side", "price", "quantity", "fee", "liquidity", "settled", "created_at")
    list_filter = ("market", "liquidity", "settled", "created_at")
    search_help_text = "Exact fill or order id, or an order's client order id; account id, name or owner."
    list_select_related = ("account", "order")

    def search_conditions(self, term):
        condition = Q(account_id__in=account_ids_matching(term)) | Q(order_id__in=orders_by_client_order_id(term))
        number = parse_id(term)
        return condition | Q(pk=number) | Q(order_id=number) if number is not None else condition


@admin.register(ReconciliationReport)
class ReconciliationReportAdmin(ReadOnlyAdmin):
    list_display = ("id", "started_at", "finished_at", "ok", "mismatches")
    list_filter = ("ok", "started_at")
    readonly_fields = ("started_at", "finished_at", "ok", "mismatches", "checks")
