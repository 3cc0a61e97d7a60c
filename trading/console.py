"""This app's sections of the per-account console page (``audit.console``)."""
from __future__ import annotations

from audit.console import AccountSection, changelist_url, decimal_text, link, register_account_section
from exchange.wire import timestamp

from .models import Fill, Order


def _order_rows(account, limit):
    orders = Order.objects.filter(account=account, status__in=Order.LIVE_STATUSES).select_related("market")
    for order in orders.order_by("-id")[:limit]:
        yield (
            link("admin:trading_order_change", order.pk, order.pk),
            order.client_order_id or "",
            order.market.symbol,
            order.side,
            order.type,
            decimal_text(order.price),
            decimal_text(order.quantity),
            decimal_text(order.filled_quantity),
            order.status,
            timestamp(order.created_at),
        )


def _fill_rows(account, limit):
    for fill in Fill.objects.filter(account=account).select_related("market", "order").order_by("-id")[:limit]:
        yield (
            link("admin:trading_fill_change", fill.pk, fill.pk),
            link("admin:trading_order_change", fill.order_id, fill.order_id),
            fill.order.client_order_id or "",
            fill.market.symbol,
            fill.side,
            decimal_text(fill.price),
            decimal_text(fill.quantity),
            f"{decimal_text(fill.fee)} {fill.fee_asset_id}",
            fill.liquidity,
            "yes" if fill.settled else "no",
            timestamp(fill.created_at),
        )


def register() -> None:
    register_account_section(
        AccountSection(
            key="open_orders",
            title="Open orders",
            permission="trading.view_order",
            columns=("Order", "Client order id", "Market", "Side", "Type", "Price", "Quantity", "Filled", "Status", "Created"),
            rows=_order_rows,
            more_url=lambda account: changelist_url("admin:trading_order_changelist", account),
            order=20,
        )
    )
    register_account_section(
        AccountSection(
            key="recent_fills",
            title="Recent fills",
            permission="trading.view_fill",
            columns=("Fill", "Order", "Client order id", "Market", "Side", "Price", "Quantity", "Fee", "Liquidity", "Settled", "Time"),
            rows=_fill_rows,
            more_url=lambda account: changelist_url("admin:trading_fill_changelist", account),
            order=30,
        )
    )
