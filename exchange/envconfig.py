"""Reading configuration from the environment, and the secrets of the embedded mode.

Production passes everything through the environment. The embedded mode (no
``DATABASE_URL``) generates its secrets once and keeps them in the data folder, so a
restart keeps sessions valid and stored API secrets decryptable; nothing is committed.
"""
import json
import math
import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_bool(name, default=False):
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false).")


def env_int(name, default):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None


def env_float(name, default: float) -> float:
    """A duration or rate: a finite number, not negative (0 where the setting says it
    switches something off)."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
    if not math.isfinite(value) or value < 0:
        raise ImproperlyConfigured(f"{name}={raw!r} must be a finite number, 0 or more.")
    return value


def env_list(name, default=()):
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def fernet_keys(name: str, keys: list[str]) -> list[str]:
    """``keys`` when each is a Fernet key (32 url-safe base64 bytes); else one clear error,
    naming which key (never its value), so no role starts that would answer 500 to every
    signed request."""
    from cryptography.fernet import Fernet

    for number, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ImproperlyConfigured(
                f"{name}: key {number} of {len(keys)} is not a Fernet key (32 url-safe base64-encoded bytes, "
                f"44 characters). Fix: generate one with `python -c 'from cryptography.fernet import Fernet; "
                f"print(Fernet.generate_key().decode())'`; separate keys with commas, newest first."
            ) from None
    return keys


def database_url(name: str, raw: str, **options) -> dict:
    """``raw`` parsed by dj-database-url, or one error naming the setting and the fix."""
    import dj_database_url

    try:
        return dict(dj_database_url.parse(raw, **options))
    except (ValueError, KeyError) as exc:
        raise ImproperlyConfigured(
            f"{name} is not a database URL ({' '.join(str(exc).split())[:200]}). "
            f"Fix: use postgres://USER:PASSWORD@HOST:5432/NAME (or sqlite:////absolute/path.sqlite3)."
        ) from None


def redis_url(name: str, raw: str) -> str:
    """``raw`` when empty or a Redis URL; else one error naming the setting and the fix."""
    if raw and not raw.startswith(("redis://", "rediss://", "unix://")):
        scheme = raw.split("://", 1)[0] if "://" in raw else "no scheme"
        raise ImproperlyConfigured(
            f"{name} is not a Redis URL ({scheme[:20]}). Fix: use redis://[:PASSWORD@]HOST:6379/DB "
            f"(rediss:// for TLS, unix:///path/redis.sock?db=N)."
        )
    return raw


def _new_fernet_key():
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


GENERATORS = {
    "SECRET_KEY": lambda: secrets.token_urlsafe(50),
    "BOURSE_ENCRYPTION_KEYS": _new_fernet_key,
}


def generated_secrets(data_dir: Path) -> dict:
    """Return the embedded mode's secrets, creating ``secrets.json`` (mode 0600) once."""
    path = data_dir / "secrets.json"
    stored = {}
    if path.exists():
        stored = json.loads(path.read_text())
    missing = [name for name in GENERATORS if name not in stored]
    if missing:
        for name in missing:
            stored[name] = GENERATORS[name]()
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(stored, fh, indent=2)
        os.replace(tmp, path)  # atomic: two processes starting at once never see half a file
        stored = json.loads(path.read_text())
    return stored


def secret(name, data_dir: Path, *, embedded: bool, allow_generated: bool) -> str:
    """A secret from the environment, else (embedded mode only) from the data folder."""
    value = os.environ.get(name, "").strip()
    if value:
        return value
    if not (embedded or allow_generated):
        raise ImproperlyConfigured(
            f"{name} must be set in production (DATABASE_URL is set). Every process of a "
            f"deployment needs the same value; see README 'Production configuration'."
        )
    return generated_secrets(data_dir)[name]
