"""Admin for markets: filters are editable, status changes go through the service."""
from django.contrib import admin, messages

from audit.adminmixins import AuditedModelAdmin

from . import services
from .models import Market


@admin.register(Market)
class MarketAdmin(AuditedModelAdmin):
    list_display = ("symbol", "base", "quote", "status", "tick_size", "lot_size", "min_notional", "maker_fee_rate", "taker_fee_rate")
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
