"""Trading services: every state change of markets, orders and fills goes through here.

Split by entity: ``markets`` (create, halt/resume), ``orders`` (submit, cancel), with the
public names re-exported so callers write ``from trading.services import order_submit``.
"""
from exchange.errors import DuplicateClientOrderId, OrderClosed

from .markets import market_create, market_set_status
from .orders import (
    order_cancel,
    order_cancel_all,
    order_submit,
    order_validate,
    order_wait,
)

__all__ = [
    "DuplicateClientOrderId",
    "OrderClosed",
    "market_create",
    "market_set_status",
    "order_cancel",
    "order_cancel_all",
    "order_submit",
    "order_validate",
    "order_wait",
]
