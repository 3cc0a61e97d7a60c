"""ccxt exchange classes for Bourse (``pip install 'bourse-sdk[ccxt]'``):

- ``bourse.ccxt.bourse`` — ccxt's synchronous API,
- ``bourse.ccxt.async_support.bourse`` — ``ccxt.async_support``,
- ``bourse.ccxt.pro.bourse`` — ``ccxt.pro`` (``watch_order_book``, ``watch_trades``,
  ``watch_orders``, ``watch_balance``, ``watch_my_trades``).

``exchange = bourse.ccxt.bourse({"apiKey": key_id, "secret": secret, "urls": {"api": "http://127.0.0.1:8000"}})``
"""
from ._common import EXACT_ERRORS, HAS
from ._sync import bourse

__all__ = ["bourse", "EXACT_ERRORS", "HAS"]
