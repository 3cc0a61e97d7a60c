"""IP allowlists, with and without a trusted proxy in front."""
import pytest

from apikeys import services
from exchange.clientip import resolve
from tests.factories import ApiKeyFactory
from tests.signed import SignedClient

pytestmark = pytest.mark.django_db

PATH = "/api/v1/account"


@pytest.fixture
def key(trader):
    return ApiKeyFactory(account=trader, ip_allowlist=["203.0.113.0/24", "2001:db8::/32"])


def get_from(key, peer, forwarded_for=None):
    extra = {"REMOTE_ADDR": peer}
    if forwarded_for is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return SignedClient(key).get(PATH, extra=extra)


@pytest.mark.parametrize("peer", ["203.0.113.7", "2001:db8::1", "::ffff:203.0.113.9"])
def test_addresses_inside_the_allowlist_pass(key, peer):
    assert get_from(key, peer).status_code == 200


@pytest.mark.parametrize("peer", ["198.51.100.1", "127.0.0.1", "2001:db9::1"])
def test_addresses_outside_are_ip_not_allowed(key, peer):
    response = get_from(key, peer)
    assert response.status_code == 403
    assert response.json()["code"] == "ip_not_allowed"


def test_forwarded_for_is_ignored_without_trusted_proxies(key, settings):
    settings.BOURSE_TRUSTED_PROXIES = []
    # Anyone can send the header: believing it would bypass the allowlist.
    response = get_from(key, "198.51.100.1", forwarded_for="203.0.113.7")
    assert response.json()["code"] == "ip_not_allowed"


def test_forwarded_for_from_a_trusted_proxy_is_honoured(key, settings):
    settings.BOURSE_TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert get_from(key, "10.1.2.3", forwarded_for="203.0.113.7").status_code == 200
    # The client cannot prepend a fake hop: only the hop our proxy appended counts.
    spoofed = get_from(key, "10.1.2.3", forwarded_for="203.0.113.7, 198.51.100.1")
    assert spoofed.json()["code"] == "ip_not_allowed"
    # An untrusted peer's header is still ignored.
    assert get_from(key, "198.51.100.1", forwarded_for="203.0.113.7").json()["code"] == "ip_not_allowed"


def test_empty_allowlist_allows_any_address(trader):
    key = ApiKeyFactory(account=trader)
    assert get_from(key, "198.51.100.1").status_code == 200


def test_allowlist_changes_apply_to_the_next_request(key):
    assert get_from(key, "198.51.100.1").status_code == 403
    services.apikey_update(key=key, ip_allowlist=["198.51.100.0/24"])
    assert get_from(key, "198.51.100.1").status_code == 200


@pytest.mark.parametrize(
    "peer, header, trusted, expected",
    [
        ("198.51.100.1", None, [], "198.51.100.1"),
        ("198.51.100.1", "1.2.3.4", [], "198.51.100.1"),
        ("10.0.0.1", "1.2.3.4", ["10.0.0.0/8"], "1.2.3.4"),
        ("10.0.0.1", "1.2.3.4, 10.0.0.9", ["10.0.0.0/8"], "1.2.3.4"),
        ("10.0.0.1", "10.0.0.8, 10.0.0.9", ["10.0.0.0/8"], "10.0.0.8"),
        ("10.0.0.1", "garbage, 1.2.3.4", ["10.0.0.0/8"], "1.2.3.4"),
        ("10.0.0.1", "1.2.3.4, garbage", ["10.0.0.0/8"], "10.0.0.1"),
    ],
)
def test_resolve(settings, peer, header, trusted, expected):
    settings.BOURSE_TRUSTED_PROXIES = trusted
    assert resolve(peer, header) == expected
