"""Trading services: every state change of markets, orders and fills goes through here.

Split by entity: ``markets`` (create, change filters, halt/resume), ``orders`` (submit, amend, cancel), with the
public names re-exported so callers write ``from trading.services import order_submit``.
"""
from exchange.errors import DuplicateClientOrderId, OrderClosed

from .deadman import DeadManState, deadman_arm, deadman_fire_due
from .markets import (
    FILTER_FIELDS,
    market_changes_check,
    market_create,
    market_create_check,
    market_set_status,
    market_update,
)
from .orders import (
    order_amend,
    order_cancel,
    order_cancel_all,
    order_cancel_by_client_id,
    order_cancel_queue,
    order_submit,
    order_validate,
    order_wait,
)

__all__ = [
    "DeadManState",
    "deadman_arm",
    "deadman_fire_due",
    "DuplicateClientOrderId",
    "OrderClosed",
    "FILTER_FIELDS",
    "market_changes_check",
    "market_create",
    "market_create_check",
    "market_set_status",
    "market_update",
    "order_amend",
    "order_cancel",
    "order_cancel_all",
    "order_cancel_by_client_id",
    "order_cancel_queue",
    "order_submit",
    "order_validate",
    "order_wait",
]
