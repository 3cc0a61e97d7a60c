"""Request signing (docs/signing.md): HMAC-SHA256 and Ed25519 over the six-line signed string."""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "Signer", "HmacSigner", "Ed25519Signer", "signed_string", "new_nonce", "auth_headers", "signer_for",
    "EMPTY_BODY_SHA256",
]

EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()


class Signer(Protocol):
    scheme: str

    def sign(self, message: str) -> str:
        """The base64 signature of ``message`` (the signed string)."""
        ...


class HmacSigner:
    """HMAC-SHA256 with the secret's UTF-8 bytes as the key (the secret is not base64-decoded)."""

    scheme = "hmac"

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("an HMAC secret is required")
        self._key = secret.encode()

    def sign(self, message: str) -> str:
        digest = hmac.new(self._key, message.encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode()


class Ed25519Signer:
    """Ed25519 with a private key given as base64 of the 32-byte seed (what ``create_trader
    --scheme ed25519`` prints), the raw 32 bytes, or a PEM (PKCS#8) private key."""

    scheme = "ed25519"

    def __init__(self, private_key: str | bytes) -> None:
        self._key = _load_ed25519(private_key)

    def sign(self, message: str) -> str:
        return base64.b64encode(self._key.sign(message.encode())).decode()

    def public_key_b64(self) -> str:
        raw = self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()


def _load_ed25519(private_key: str | bytes) -> Ed25519PrivateKey:
    if isinstance(private_key, bytes) and len(private_key) == 32:
        return Ed25519PrivateKey.from_private_bytes(private_key)
    text = private_key.decode() if isinstance(private_key, bytes) else private_key
    if "-----BEGIN" in text:
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the PEM key is not an Ed25519 private key")
        return key
    try:
        seed = base64.b64decode(text.strip(), validate=True)
    except ValueError as exc:
        raise ValueError("an Ed25519 private key must be base64 of its 32-byte seed, or PEM") from exc
    if len(seed) != 32:
        raise ValueError(f"an Ed25519 seed has 32 bytes, got {len(seed)}")
    return Ed25519PrivateKey.from_private_bytes(seed)


def signer_for(*, secret: str | None = None, private_key: str | bytes | None = None) -> Signer:
    """The signer for a key: ``secret`` (HMAC) or ``private_key`` (Ed25519), exactly one."""
    if (secret is None) == (private_key is None):
        raise ValueError("give exactly one of secret (HMAC key) or private_key (Ed25519 key)")
    return HmacSigner(secret) if secret is not None else Ed25519Signer(private_key)  # type: ignore[arg-type]


def signed_string(timestamp: str, nonce: str, method: str, path: str, query: str = "", body: bytes = b"") -> str:
    """``{timestamp}\\n{nonce}\\n{METHOD}\\n{path}\\n{query}\\n{sha256 hex of body}``."""
    return "\n".join([timestamp, nonce, method.upper(), path, query, hashlib.sha256(body).hexdigest()])


def new_nonce() -> str:
    """24 characters of ``A-Za-z0-9_-``."""
    return secrets.token_urlsafe(18)


def now_ms(offset_ms: int = 0) -> int:
    return int(time.time() * 1000) + offset_ms


def auth_headers(signer: Signer, key_id: str, method: str, path: str, query: str = "", body: bytes = b"",
                 *, timestamp_ms: int | None = None, nonce: str | None = None,
                 window_ms: int | None = None) -> dict[str, str]:
    """The ``X-API-*`` headers of one signed request."""
    timestamp = str(now_ms() if timestamp_ms is None else timestamp_ms)
    nonce = nonce or new_nonce()
    headers = {
        "X-API-Key": key_id,
        "X-API-Timestamp": timestamp,
        "X-API-Nonce": nonce,
        "X-API-Signature": signer.sign(signed_string(timestamp, nonce, method, path, query, body)),
    }
    if window_ms is not None:
        headers["X-API-Window"] = str(window_ms)
    return headers
