"""The console's log-in: rate-limited per source IP and per username, and audited.

Failures are counted in the cache (Redis in production) in fixed windows of
``BOURSE_ADMIN_LOGIN_WINDOW_S``. Once a source IP has ``BOURSE_ADMIN_LOGIN_MAX_FAILURES_PER_IP``
failures, or a username ``BOURSE_ADMIN_LOGIN_MAX_FAILURES_PER_USER``, further attempts are
refused — even with the right password — until the window ends (HTTP 429 with
``Retry-After``). A successful log-in clears its username's count. Per-username limits let
someone lock an operator out for one window by guessing; that is the price of stopping
password guessing against one account from many addresses, and the window is short.

The limit is atomic: each attempt *reserves* its place in both counters (an atomic
``incr``) before the password is checked, and is refused if that takes a counter past its
limit; a successful log-in gives its places back. So parallel wrong passwords cannot slip
between a read of the count and its increment: at most the limit of them are ever checked.

Every log-in is an ``admin.login`` event; every failure, refused attempt included, goes
through ``audit_auth_failure`` (aggregated per source).
"""
from __future__ import annotations

import hashlib
import math
import time

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError

from exchange.clientip import client_ip
from exchange.context import Actor
from exchange.ratelimit import ip_identity

from .services import audit_auth_failure, audit_record

# Where a refused log-in leaves its wait for the admin site's Retry-After header (a
# WSGI-style extension key in request.META, not an attribute added to the request).
RETRY_AFTER_META_KEY = "bourse.login_retry_after"
# Set on a request whose attempt the form already counted (on_login_failed must not again).
RESERVED_META_KEY = "bourse.login_reserved"


def _limits() -> tuple[int, int, int]:
    return (
        int(getattr(settings, "BOURSE_ADMIN_LOGIN_WINDOW_S", 900)),
        int(getattr(settings, "BOURSE_ADMIN_LOGIN_MAX_FAILURES_PER_IP", 20)),
        int(getattr(settings, "BOURSE_ADMIN_LOGIN_MAX_FAILURES_PER_USER", 5)),
    )


def _keys(ip: str, username: str, window_start: int) -> tuple[str, str]:
    # Usernames are hashed: any text can be typed, and cache keys should stay plain.
    user_digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    # An IPv6 client counts by its /64 (``ratelimit.ip_identity``), like the API's budgets.
    return f"adminlogin:ip:{ip_identity(ip)}:{window_start}", f"adminlogin:user:{user_digest}:{window_start}"


def _window() -> tuple[int, int]:
    size = _limits()[0]
    start = int(time.time() // size) * size
    return start, start + size


def login_retry_after(ip: str, username: str) -> int:
    """Seconds until ``ip``/``username`` may try again; 0 when allowed now."""
    _, per_ip, per_user = _limits()
    start, end = _window()
    ip_key, user_key = _keys(ip, username, start)
    counts = cache.get_many([ip_key, user_key])
    if counts.get(ip_key, 0) >= per_ip or (username and counts.get(user_key, 0) >= per_user):
        return max(1, math.ceil(end - time.time()))
    return 0


def _incr(key: str, ttl: int, delta: int = 1) -> int:
    cache.add(key, 0, timeout=ttl)
    try:
        return cache.incr(key, delta)
    except ValueError:  # evicted between add and incr
        cache.set(key, max(0, delta), timeout=ttl)
        return max(0, delta)


def login_failed(ip: str, username: str) -> None:
    start, end = _window()
    ttl = end - start + 60
    for key in _keys(ip, username, start):
        _incr(key, ttl)


def login_reserve(ip: str, username: str) -> int:
    """Count this attempt before its password is checked (atomically); 0 when it may go on,
    else the seconds until it may (the attempt is then not counted)."""
    _, per_ip, per_user = _limits()
    start, end = _window()
    ttl = end - start + 60
    ip_key, user_key = _keys(ip, username, start)
    ip_count = _incr(ip_key, ttl)
    user_count = _incr(user_key, ttl) if username else 0
    if ip_count > per_ip or user_count > per_user:
        _incr(ip_key, ttl, -1)
        if username:
            _incr(user_key, ttl, -1)
        return max(1, math.ceil(end - time.time()))
    return 0


def login_release(ip: str, username: str) -> None:
    """A reserved attempt succeeded: it is not a failure."""
    start, end = _window()
    _incr(_keys(ip, username, start)[0], end - start + 60, -1)


def login_succeeded(username: str) -> None:
    start, _ = _window()
    cache.delete(_keys("", username, start)[1])


class ThrottledAuthenticationForm(AdminAuthenticationForm):
    """The admin log-in form, refusing before checking the password when throttled."""

    def clean(self):
        ip = client_ip(self.request) if self.request is not None else ""
        username = self.cleaned_data.get("username") or ""
        retry_after = login_reserve(ip, username)
        if retry_after:
            if self.request is not None:
                self.request.META[RETRY_AFTER_META_KEY] = retry_after
            audit_auth_failure(ip or None, username, "rate_limited", channel="admin")
            minutes = math.ceil(retry_after / 60)
            raise ValidationError(
                f"Too many failed log-in attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
                code="rate_limited",
            )
        if self.request is not None:
            self.request.META[RESERVED_META_KEY] = True  # on_login_failed: already counted
        cleaned = super().clean()
        login_release(ip, username)  # not a failure after all
        return cleaned


# --- Signal receivers (connected in AuditConfig.ready) -----------------------------------


def on_login_failed(sender, credentials, request=None, **kwargs) -> None:
    if request is None:
        return  # not an HTTP log-in (e.g. a script calling authenticate())
    ip = client_ip(request)
    username = str(credentials.get("username", ""))
    if not request.META.get(RESERVED_META_KEY):
        login_failed(ip, username)  # a log-in path that did not reserve its attempt
    audit_auth_failure(ip or None, username, "bad_credentials", channel="admin")


def on_logged_in(sender, request, user, **kwargs) -> None:
    login_succeeded(user.get_username())
    ip = client_ip(request) if request is not None and "REMOTE_ADDR" in request.META else None
    audit_record("admin.login", target=user, actor=Actor.user(user), source_ip=ip or None)
