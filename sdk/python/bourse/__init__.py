"""Bourse Python SDK: REST (``Client``, ``AsyncClient``), WebSocket (``Stream``), signing, and
``bourse.ccxt`` (a ccxt exchange class; ``pip install 'bourse-sdk[ccxt]'``)."""
from ._signing import Ed25519Signer, HmacSigner, auth_headers, new_nonce, signed_string, signer_for
from .client import OPERATIONS, AsyncClient, Client, RetryPolicy
from .errors import BourseError, FieldError, GapError
from .models import (
                     Account,
                     ApiKeyInfo,
                     Asset,
                     Balance,
                     BatchResult,
                     Book,
                     CancelAfterState,
                     CancelAll,
                     Candle,
                     Fill,
                     LedgerEntry,
                     Market,
                     Order,
                     Page,
                     Position,
                     ServerTime,
                     Ticker,
                     Trade,
)
from .ratelimit import Limit, Policy, RateLimit, parse_rate_limit
from .ws import OrderBook, Stream, book_checksum

__version__ = "0.1.0"

__all__ = [
    "Client", "AsyncClient", "RetryPolicy", "OPERATIONS", "Stream", "OrderBook", "book_checksum",
    "BourseError", "FieldError", "GapError", "RateLimit", "Policy", "Limit", "parse_rate_limit",
    "HmacSigner", "Ed25519Signer", "signer_for", "signed_string", "auth_headers", "new_nonce",
    "Account", "ApiKeyInfo", "Asset", "Balance", "BatchResult", "Book", "CancelAfterState", "CancelAll", "Candle",
    "Fill", "LedgerEntry", "Market", "Order", "Page",
    "Position", "ServerTime", "Ticker", "Trade",
]
