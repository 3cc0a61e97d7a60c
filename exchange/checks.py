"""Deployment checks Django's own cannot make here: the console's session and CSRF
middleware (exchange.consolemiddleware) subclass Django's but under other names, so
Django's security.W003/W012/W016 either misfire (W003: "no CSRF protection") or never fire
(W012/W016: insecure cookies). These say the same for the middleware Bourse runs."""
from django.conf import settings
from django.core.checks import Tags, Warning, register

SESSION = "exchange.consolemiddleware.ConsoleSessionMiddleware"
CSRF = "exchange.consolemiddleware.ConsoleCsrfViewMiddleware"


@register(Tags.security, deploy=True)
def console_middleware_check(app_configs=None, **kwargs):
    issues = []
    if CSRF not in settings.MIDDLEWARE and "django.middleware.csrf.CsrfViewMiddleware" not in settings.MIDDLEWARE:
        issues.append(Warning("No CSRF protection: neither the console's nor Django's CSRF middleware is in MIDDLEWARE.",
                              id="bourse.W003"))
    if SESSION in settings.MIDDLEWARE and not settings.SESSION_COOKIE_SECURE:
        issues.append(Warning("SESSION_COOKIE_SECURE is not set to True: the console's session cookie can travel "
                              "over plain HTTP. Set SESSION_COOKIE_SECURE=1 behind TLS.", id="bourse.W012"))
    if CSRF in settings.MIDDLEWARE and not settings.CSRF_COOKIE_SECURE:
        issues.append(Warning("CSRF_COOKIE_SECURE is not set to True: set CSRF_COOKIE_SECURE=1 behind TLS.",
                              id="bourse.W016"))
    return issues
