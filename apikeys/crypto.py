"""Key material: identifiers, HMAC secrets encrypted at rest, Ed25519 keys.

HMAC secrets are encrypted with ``MultiFernet`` over ``settings.BOURSE_ENCRYPTION_KEYS``
(newest first): the newest key encrypts, every listed key decrypts, so an operator rotates
by prepending a new key, running ``rotate_api_secrets``, and later dropping the old one.
"""
from __future__ import annotations

import base64
import binascii
import secrets
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

KEY_ID_PREFIX = "bk_"
# Lower-case letters and digits without look-alikes: easy to read aloud and to grep logs for.
_KEY_ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_KEY_ID_LENGTH = 24  # ~118 bits: unguessable, though a key id is not itself a secret


def new_key_id() -> str:
    return KEY_ID_PREFIX + "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(_KEY_ID_LENGTH))


def new_hmac_secret() -> str:
    """256 random bits, URL-safe base64 without padding (43 characters)."""
    return secrets.token_urlsafe(32)


@lru_cache(maxsize=4)
def _multifernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise RuntimeError("BOURSE_ENCRYPTION_KEYS is empty")
    return MultiFernet([Fernet(key.encode() if isinstance(key, str) else key) for key in keys])


def fernet() -> MultiFernet:
    return _multifernet(tuple(settings.BOURSE_ENCRYPTION_KEYS))


def encrypt_secret(secret: str) -> bytes:
    return fernet().encrypt(secret.encode())


def decrypt_secret(token: bytes | memoryview) -> str:
    return fernet().decrypt(bytes(token)).decode()


def reencrypt(token: bytes | memoryview) -> bytes:
    """The token re-encrypted with the newest key (unchanged secret)."""
    return fernet().rotate(bytes(token))


# --- Ed25519 ---------------------------------------------------------------------------


def ed25519_generate() -> tuple[str, str]:
    """A new key pair as ``(private seed, public key)``, each base64 of 32 raw bytes."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(seed).decode(), base64.b64encode(public).decode()


def normalize_ed25519_public_key(text: str) -> str:
    """Accept base64 of the 32 raw bytes or a PEM ``PUBLIC KEY``; return base64 of the raw bytes.

    Raises ``ValueError`` with a message fit for the caller.
    """
    text = (text or "").strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except ValueError:
            raise ValueError("not a PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the PEM key is not an Ed25519 key")
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not base64") from None
        if len(raw) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes (44 base64 characters)")
        Ed25519PublicKey.from_public_bytes(raw)
    return base64.b64encode(raw).decode()


@lru_cache(maxsize=1024)
def _ed25519_public(public_b64: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64))


def ed25519_verify(public_b64: str, message: bytes, signature: bytes) -> bool:
    try:
        _ed25519_public(public_b64).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
