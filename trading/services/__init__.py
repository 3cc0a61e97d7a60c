"""Trading services: every state change of markets, orders and fills goes through here.

Split by entity: ``markets`` (create, halt/resume), ``orders`` (submit, cancel), with the
public names re-exported so callers write ``from trading.services import order_submit``.
"""
from .markets import market_create, market_set_status

__all__ = ["market_create", "market_set_status"]
