"""The request-signing scheme, shared by the server and by clients (and the docs' vectors).

The signed string is six lines joined by ``\\n``::

    {timestamp}\\n{nonce}\\n{METHOD}\\n{path}\\n{query}\\n{sha256 hex of the raw body}

HMAC-SHA256 keys sign it with the secret string's UTF-8 bytes; Ed25519 keys with their
private key. Either way the signature travels base64-encoded in ``X-API-Signature``.
"""
from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()


def body_sha256(body: bytes | None) -> str:
    return hashlib.sha256(body or b"").hexdigest()


def signed_string(timestamp, nonce: str, method: str, path: str, query: str, body_hash: str) -> str:
    return "\n".join([str(timestamp), nonce, method.upper(), path, query, body_hash])


def sign_hmac(secret: str, message: str | bytes) -> str:
    data = message.encode() if isinstance(message, str) else message
    return base64.b64encode(hmac.new(secret.encode(), data, hashlib.sha256).digest()).decode()


def sign_ed25519(private_seed_b64: str, message: str | bytes) -> str:
    data = message.encode() if isinstance(message, str) else message
    private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(private_seed_b64))
    return base64.b64encode(private.sign(data)).decode()


def signed_headers(
    *,
    key_id: str,
    timestamp: int,
    nonce: str,
    method: str,
    path: str,
    query: str = "",
    body: bytes = b"",
    secret: str | None = None,
    private_key: str | None = None,
    window: int | None = None,
) -> dict[str, str]:
    """The four (or five) ``X-API-*`` headers for a request; give ``secret`` (HMAC) or
    ``private_key`` (Ed25519 seed, base64)."""
    message = signed_string(timestamp, nonce, method, path, query, body_sha256(body))
    if secret is not None:
        signature = sign_hmac(secret, message)
    elif private_key is not None:
        signature = sign_ed25519(private_key, message)
    else:
        raise ValueError("give secret (HMAC) or private_key (Ed25519)")
    headers = {
        "X-API-Key": key_id,
        "X-API-Timestamp": str(timestamp),
        "X-API-Nonce": nonce,
        "X-API-Signature": signature,
    }
    if window is not None:
        headers["X-API-Window"] = str(window)
    return headers
