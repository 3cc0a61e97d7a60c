"""Configuration: embedded secrets are generated once; production refuses to run without them."""
import json
import stat

import pytest
from django.core.exceptions import ImproperlyConfigured

from exchange.envconfig import env_bool, env_float, generated_secrets, secret


def test_generated_secrets_are_created_once_and_private(tmp_path):
    first = generated_secrets(tmp_path)
    second = generated_secrets(tmp_path)
    assert first == second
    assert set(first) == {"SECRET_KEY", "BOURSE_ENCRYPTION_KEYS"}
    mode = stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode)
    assert mode == 0o600
    assert json.loads((tmp_path / "secrets.json").read_text()) == first


def test_environment_wins_over_generated(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "from-env")
    assert secret("SECRET_KEY", tmp_path, embedded=True, allow_generated=False) == "from-env"
    assert not (tmp_path / "secrets.json").exists()


def test_production_requires_secrets(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY must be set"):
        secret("SECRET_KEY", tmp_path, embedded=False, allow_generated=False)


@pytest.mark.parametrize("raw, value", [("1", True), ("true", True), ("0", False), ("off", False)])
def test_env_bool(monkeypatch, raw, value):
    monkeypatch.setenv("X_FLAG", raw)
    assert env_bool("X_FLAG") is value


def test_env_bool_rejects_garbage(monkeypatch):
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured):
        env_bool("X_FLAG")


@pytest.mark.parametrize("raw", ["soon", "nan", "inf", "-1", "1e400"])
def test_env_float_rejects_what_is_not_a_duration(monkeypatch, raw):
    monkeypatch.setenv("X_SECONDS", raw)
    with pytest.raises(ImproperlyConfigured, match="X_SECONDS="):
        env_float("X_SECONDS", 1.0)


def test_env_float_reads_a_number_and_defaults_when_unset_or_empty(monkeypatch):
    monkeypatch.setenv("X_SECONDS", "2.5")
    assert env_float("X_SECONDS", 1.0) == 2.5
    monkeypatch.setenv("X_SECONDS", " ")
    assert env_float("X_SECONDS", 1.0) == 1.0
    monkeypatch.delenv("X_SECONDS")
    assert env_float("X_SECONDS", 0) == 0.0


def test_every_numeric_setting_is_read_through_a_checked_reader():
    """A malformed number stops a role with one line naming the setting (exit 78), never a
    traceback from a bare ``float()`` or ``int()`` at import (tests/exchange/test_startup_errors.py)."""
    import re
    from pathlib import Path

    import exchange.settings

    source = Path(exchange.settings.__file__).read_text()
    assert not re.findall(r"\b(?:float|int)\(os\.(?:environ|getenv)", source)
