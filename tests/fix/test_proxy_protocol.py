"""The FIX gateway behind a TLS terminator (issue 13, item 4): PROXY protocol v1 and v2 from
``BOURSE_TRUSTED_PROXIES`` give the real client address, so IP allowlists and the
per-address failure budget work for FIX, and one client failing its Logons behind the shared
terminator address cannot lock the others out. From anyone else the header is refused."""
import ipaddress
import struct

import pytest

from apikeys.services import apikey_update
from tests.factories import ApiKeyFactory, AssetFactory, MarketFactory
from trading.fix import proxy

from .support import Processes, RawClient

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def v1(source: str, dest: str = "10.0.0.1", sport: int = 40000, dport: int = 9878) -> bytes:
    family = "TCP4" if ipaddress.ip_address(source).version == 4 else "TCP6"
    return f"PROXY {family} {source} {dest} {sport} {dport}\r\n".encode()


def v2(source: str, dest: str = "10.0.0.1", sport: int = 40000, dport: int = 9878, command: int = 0x1) -> bytes:
    address = ipaddress.ip_address(source)
    if address.version == 4:
        family = 0x11
        block = address.packed + ipaddress.IPv4Address(dest).packed + struct.pack("!HH", sport, dport)
    else:
        family = 0x21
        block = address.packed + ipaddress.IPv6Address("::1").packed + struct.pack("!HH", sport, dport)
    return proxy.V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(block)) + block


@pytest.fixture
def market():
    usd, btc = AssetFactory(code="USD", scale=6), AssetFactory(code="BTC", scale=8)
    return MarketFactory(base=btc, quote=usd)


@pytest.fixture
def behind_proxy(market):
    """A gateway whose trusted proxy is 127.0.0.1 (this test plays the TLS terminator)."""
    processes = Processes(BOURSE_TRUSTED_PROXIES="127.0.0.1/32", BOURSE_RATE_LIMIT_AUTH_FAILURES="5/86400")
    clients = []

    def client(key, header=b""):
        raw = RawClient(processes.port, key)
        clients.append(raw)
        if header:
            raw.send_raw(header)
        return raw

    yield client
    for raw in clients:
        raw.close()
    print(processes.stop())


def logon_text(raw) -> str:
    raw.logon()
    message = raw.read(5)
    assert message is not None, "no answer to the Logon"
    return "A" if message.msg_type == "A" else message.get(58)


def test_allowlists_see_the_address_the_proxy_reports_v1_and_v2(behind_proxy):
    key = ApiKeyFactory()
    apikey_update(key=key, ip_allowlist=["198.51.100.0/24", "2001:db8::/32"])
    assert logon_text(behind_proxy(key, v1("198.51.100.7"))) == "A"
    other = ApiKeyFactory()
    apikey_update(key=other, ip_allowlist=["198.51.100.0/24"])
    assert logon_text(behind_proxy(other, v2("198.51.100.8"))) == "A"
    third = ApiKeyFactory()
    apikey_update(key=third, ip_allowlist=["2001:db8::/32"])
    assert logon_text(behind_proxy(third, v2("2001:db8::5"))) == "A"
    refused = ApiKeyFactory()
    apikey_update(key=refused, ip_allowlist=["198.51.100.0/24"])
    assert logon_text(behind_proxy(refused, v1("203.0.113.9"))).startswith("ip_not_allowed")
    # Without a header the trusted peer's own address stands (127.0.0.1: outside the list).
    plain = ApiKeyFactory()
    apikey_update(key=plain, ip_allowlist=["198.51.100.0/24"])
    assert logon_text(behind_proxy(plain)).startswith("ip_not_allowed")
    # v2 LOCAL (a health check of the proxy itself) keeps the peer address too.
    local = ApiKeyFactory()
    assert logon_text(behind_proxy(local, v2("198.51.100.9", command=0x0))) == "A"


def test_one_client_failing_behind_the_shared_proxy_does_not_lock_out_the_others(behind_proxy):
    victim = ApiKeyFactory()
    attacker_key = ApiKeyFactory()
    attacker_key.secret = "not-the-secret"  # every Logon fails: invalid_credentials
    texts = [logon_text(behind_proxy(attacker_key, v1("203.0.113.66"))) for _ in range(7)]
    assert texts[0].startswith("invalid_credentials")
    assert texts[-1].startswith("rate_limited"), texts  # the attacker's own address is throttled
    # The victim comes through the same terminator (same socket peer), from its own address.
    assert logon_text(behind_proxy(victim, v1("198.51.100.20"))) == "A"
    assert logon_text(behind_proxy(ApiKeyFactory(), v2("198.51.100.21"))) == "A"


def test_a_proxy_header_from_an_untrusted_peer_is_refused(market):
    processes = Processes()  # no trusted proxies
    try:
        key = ApiKeyFactory()
        raw = RawClient(processes.port, key)
        raw.send_raw(v1("198.51.100.7"))
        logout = raw.expect("5")
        assert "not in BOURSE_TRUSTED_PROXIES" in logout.get(58)
        assert raw.wait_closed()
        raw.close()
    finally:
        print(processes.stop())


@pytest.mark.parametrize("line", [
    b"PROXY TCP4 198.51.100.7\r\n",
    b"PROXY TCP4 not-an-ip 10.0.0.1 1 2\r\n",
    b"PROXY TCP6 198.51.100.7 10.0.0.1 1 2\r\n",
    b"PROXY TCP4 198.51.100.7 10.0.0.1 1 99999\r\n",
    b"PROXY TCP4 198.51.100.7 10.0.0.1 1 2\n",
])
def test_malformed_v1_lines_are_refused(line):
    with pytest.raises(proxy.ProxyHeaderError):
        proxy.parse_v1(line)


def test_v1_and_v2_parsing():
    assert proxy.parse_v1(v1("198.51.100.7")) == "198.51.100.7"
    assert proxy.parse_v1(b"PROXY UNKNOWN\r\n") is None
    header = v2("2001:db8::5")
    assert proxy.parse_v2(header[:16], header[16:]) == "2001:db8::5"
    mapped = v2("::ffff:198.51.100.7")
    assert proxy.parse_v2(mapped[:16], mapped[16:]) == "198.51.100.7"
    bad_version = bytearray(v2("198.51.100.7"))
    bad_version[12] = 0x11
    with pytest.raises(proxy.ProxyHeaderError):
        proxy.parse_v2(bytes(bad_version[:16]), bytes(bad_version[16:]))
