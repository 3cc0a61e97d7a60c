"""Admin for markets: filters are editable, status changes go through the service."""
from django.contrib import admin, messages

from accounts.admin import ReadOnlyAdmin  # orders, trades, fills change only through the services
from audit.adminmixins import AuditedModelAdmin

from . import services
from .models import Fill, Market, Order, ReconciliationReport, Trade


@admin.register(Market)
class MarketAdmin(AuditedModelAdmin):
    list_display = ("symbol", "base", "quote", "status", "tick_size", "lot_size", "min_notional", "max_price", "max_quantity", "max_notional", "maker_fee_rate", "taker_fee_rate")
    list_filter = ("status",)
    search_fields = ("symbol",)
    readonly_fields = ("status", "created_at")
    actions = ["halt", "resume"]

    def get_readonly_fields(self, request, obj=None):
        # Base and quote define what resting orders mean; they never change after creation.
        return self.readonly_fields + (("symbol", "base", "quote") if obj else ())

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


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ("id", "client_order_id", "account", "market", "side", "type", "price", "quantity",
                    "filled_quantity", "status", "created_at")
    list_filter = ("status", "market", "side", "type", "time_in_force", "created_at")
    search_fields = ("=id", "client_order_id", "=account__id", "account__name", "account__owner__username")
    list_select_related = ("account", "market")
    date_hierarchy = "created_at"
    actions = ["cancel_orders"]

    def has_cancel_permission(self, request):
        return request.user.has_perm("trading.cancel_order")  # the Operations role

    @admin.action(description="Cancel selected orders (through the engine)", permissions=["cancel"])
    def cancel_orders(self, request, queryset):
        from exchange.errors import BourseError

        queued = 0
        for order in queryset.select_related("account"):
            try:
                services.order_cancel(account=order.account, order_id=order.pk)
                queued += 1
            except BourseError as exc:
                self.message_user(request, f"order {order.pk}: {exc.detail} ({exc.code})", messages.WARNING)
        if queued:
            self.message_user(request, f"Cancel queued for {queued} order(s).", messages.SUCCESS)


@admin.register(Trade)
class TradeAdmin(ReadOnlyAdmin):
    list_display = ("id", "market", "price", "quantity", "taker_side", "taker_order", "maker_order", "settled", "created_at")
    list_filter = ("market", "settled", "created_at")
    search_fields = ("=id", "=taker_order__id", "=maker_order__id")
    list_select_related = ("market",)


@admin.register(Fill)
class FillAdmin(ReadOnlyAdmin):
    list_display = ("id", "trade", "order", "account", "side", "price", "quantity", "fee", "liquidity", "settled", "created_at")
    list_filter = ("market", "liquidity", "settled", "created_at")
    search_fields = ("=id", "=order__id", "order__client_order_id", "=account__id", "account__name")
    list_select_related = ("account", "order")


@admin.register(ReconciliationReport)
class ReconciliationReportAdmin(ReadOnlyAdmin):
    list_display = ("id", "started_at", "finished_at", "ok", "mismatches")
    list_filter = ("ok", "started_at")
    readonly_fields = ("started_at", "finished_at", "ok", "mismatches", "checks")
