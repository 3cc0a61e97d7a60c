"""Start-up checks: bad rate-limit or trusted-proxy settings stop the server with a message;
the configured cache passes django-ratelimit's own check (shared, atomic)."""
import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from apikeys.apps import check_settings


def test_defaults_pass_every_check(settings):
    call_command("check")  # includes django_ratelimit.E003 (refuses non-atomic caches)
    assert check_settings(None) == []


def test_bad_rate_limit_setting_is_an_error(settings):
    settings.BOURSE_RATE_LIMITS = {**settings.BOURSE_RATE_LIMITS, "key": "lots"}
    assert [e.id for e in check_settings(None)] == ["apikeys.E001"]
    with pytest.raises(SystemCheckError, match="QUOTA/WINDOW_SECONDS"):
        call_command("check")


def test_bad_trusted_proxy_is_an_error(settings):
    settings.BOURSE_TRUSTED_PROXIES = ["10.0.0.0/8", "proxy.internal"]
    assert [e.id for e in check_settings(None)] == ["apikeys.E002"]
