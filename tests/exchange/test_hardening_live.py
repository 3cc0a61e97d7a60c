"""Production hardening (issue 13, item 6), against both servers (the ``web`` role's
serve_http and the ``ws`` role's daphne) with the production settings
turned on: HSTS behind a TLS-terminating proxy, Secure/HttpOnly/SameSite cookies, a
Content-Security-Policy on the console and docs pages, Swagger UI without the outside
validator, and per-address limits that count an IPv6 client by its /64."""
import re
import urllib.request
from contextlib import contextmanager
from urllib.error import HTTPError

import pytest

from exchange import ratelimit
from tests.support import HTTP_ROLES, http_server

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(params=HTTP_ROLES)
def server_with(request):
    @contextmanager
    def start(**env_extra):
        with http_server(request.param, **env_extra) as server:
            yield server.http

    return start


def get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read().decode()
    except HTTPError as error:
        return error.code, error.headers, error.read().decode()


PRODUCTION = {
    "SECURE_HSTS_SECONDS": "31536000", "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SESSION_COOKIE_SECURE": "1", "CSRF_COOKIE_SECURE": "1",
    "BOURSE_SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO=https",
    "BOURSE_TRUSTED_PROXIES": "127.0.0.1/32",
}


def test_production_headers_cookies_and_csp(server_with):
    with server_with(**PRODUCTION) as base:
        via_tls = {"X-Forwarded-Proto": "https"}
        status, headers, _ = get(base + "/api/v1/time", via_tls)
        assert status == 200
        assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
        # Over plain HTTP (the proxy says so): no HSTS, as the standard requires.
        assert "Strict-Transport-Security" not in get(base + "/api/v1/time")[1]
        status, headers, html = get(base + "/admin/login/", via_tls)
        assert status == 200
        cookie = headers["Set-Cookie"]
        assert cookie.startswith("csrftoken=") and "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        for page in ("/api/docs", "/api/docs/redoc"):
            status, headers, html = get(base + page, via_tls)
            assert status == 200 and "script-src 'self'" in headers["Content-Security-Policy"], page
            assert not re.search(r"<script>(?!\s*</script>)", html), f"{page} has an inline script the CSP would block"
        script_url = re.search(r'<script src="(/api/docs\?[^"]+)"', get(base + "/api/docs")[2]).group(1)
        status, _, script = get(base + script_url.replace("&amp;", "&"))
        assert status == 200 and "/api/v1/openapi.yaml" in script
        assert re.search(r'"validatorUrl":\s*null', script), "Swagger UI must not call the online validator"
        # JSON API responses carry no CSP (it concerns pages).
        assert "Content-Security-Policy" not in get(base + "/api/v1/time")[1]


def test_per_address_limits_count_an_ipv6_client_by_its_64(server_with):
    with server_with(**PRODUCTION, BOURSE_RATE_LIMIT_IP="3/86400") as base:
        def from_(address):
            return get(base + "/api/v1/time", {"X-Forwarded-For": address})[0]

        assert [from_(a) for a in ("2001:db8:1:2::1", "2001:db8:1:2::ffff", "2001:db8:1:2:abcd::7")] == [200] * 3
        assert from_("2001:db8:1:2:ffff:ffff:ffff:fffe") == 429  # same /64: same budget
        assert from_("2001:db8:1:3::1") == 200  # the next /64 is another client
        assert from_("198.51.100.1") == 200


def test_ip_identity():
    assert ratelimit.ip_identity("2001:db8::1") == "2001:db8::/64"
    assert ratelimit.ip_identity("::ffff:198.51.100.7") == "198.51.100.7"
    assert ratelimit.ip_identity("198.51.100.7") == "198.51.100.7"
    assert ratelimit.ip_identity("not-an-ip") == "not-an-ip"
