"""API keys (HMAC-SHA256 and Ed25519), the request-signature verifier, replay guard, rate limits."""
from django.apps import AppConfig
from django.core import checks


class ApikeysConfig(AppConfig):
    name = "apikeys"
    verbose_name = "API keys"

    def ready(self):
        from . import console, owners, schema  # noqa: F401  (schema registers the OpenAPI security scheme)

        owners.connect()  # the owner's Active flag announces key-state events

        console.register()  # this app's section of the account console page

        checks.register(check_settings, checks.Tags.security)


def check_settings(app_configs, **kwargs):
    """Refuse to start with a rate limit or trusted-proxy setting that does not parse."""
    import ipaddress

    from django.conf import settings

    from exchange.ratelimit import parse_rate

    problems = []
    for name, raw in settings.BOURSE_RATE_LIMITS.items():
        try:
            parse_rate(name, raw)
        except ValueError as exc:
            problems.append(checks.Error(str(exc), id="apikeys.E001"))
    for cidr in settings.BOURSE_TRUSTED_PROXIES:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            problems.append(checks.Error(f"BOURSE_TRUSTED_PROXIES: {cidr!r} is not a CIDR", id="apikeys.E002"))
    return problems
