"""The PROXY protocol (HAProxy's, versions 1 and 2) in front of the FIX gateway.

Behind a TCP/TLS terminator the socket peer is the terminator, so IP allowlists and the
per-address failure budget would all see one address — and one client failing its Logons
could lock every other client out. A terminator that speaks the PROXY protocol (HAProxy
``send-proxy``/``send-proxy-v2``, nginx ``proxy_protocol on``, AWS NLB, stunnel
``protocol = proxy``) prefixes the connection with the client's real address.

The header is honoured only when the peer is in ``BOURSE_TRUSTED_PROXIES``; from anyone
else it is refused (a client cannot claim an address). A trusted peer may also connect
without a header (then the peer's address stands). ``LOCAL`` (v2) and ``UNKNOWN`` (v1) keep
the peer's address too.
"""
from __future__ import annotations

import asyncio
import ipaddress
import struct

from exchange import clientip

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
V1_MAX = 107  # the specification's longest v1 line, CRLF included
V2_MAX_PAYLOAD = 536  # addresses + TLVs we are willing to read


class ProxyHeaderError(Exception):
    """A malformed PROXY header, or one from a peer that is not a trusted proxy."""


def trusted(peer: str | None) -> bool:
    return clientip.is_trusted_proxy(peer)


def parse_v1(line: bytes) -> str | None:
    """``PROXY TCP4 src dst sport dport\\r\\n`` -> src; ``PROXY UNKNOWN...`` -> None."""
    if not line.endswith(b"\r\n") or len(line) > V1_MAX:
        raise ProxyHeaderError("PROXY v1 line too long or not CRLF-terminated")
    parts = line[:-2].decode("ascii", errors="replace").split(" ")
    if len(parts) >= 2 and parts[0] == "PROXY" and parts[1] == "UNKNOWN":
        return None
    if len(parts) != 6 or parts[0] != "PROXY" or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError("PROXY v1 line malformed")
    try:
        source = ipaddress.ip_address(parts[2])
        ipaddress.ip_address(parts[3])
        ports = [int(p) for p in parts[4:6]]
    except ValueError:
        raise ProxyHeaderError("PROXY v1 addresses or ports malformed") from None
    if (parts[1] == "TCP4") != (source.version == 4) or not all(0 <= p <= 65535 for p in ports):
        raise ProxyHeaderError("PROXY v1 addresses or ports malformed")
    return str(source)


def parse_v2(header: bytes, payload: bytes) -> str | None:
    """The 16-byte v2 header and its payload -> the source address (None: keep the peer's)."""
    version_command, family = header[12], header[13]
    if version_command >> 4 != 2:
        raise ProxyHeaderError("PROXY v2 version is not 2")
    command = version_command & 0x0F
    if command == 0x0:  # LOCAL: the proxy's own connection (a health check)
        return None
    if command != 0x1:
        raise ProxyHeaderError("PROXY v2 command unknown")
    address_family = family >> 4
    if address_family == 0x1:  # AF_INET
        if len(payload) < 12:
            raise ProxyHeaderError("PROXY v2 IPv4 block too short")
        return str(ipaddress.IPv4Address(payload[:4]))
    if address_family == 0x2:  # AF_INET6
        if len(payload) < 36:
            raise ProxyHeaderError("PROXY v2 IPv6 block too short")
        address = ipaddress.IPv6Address(payload[:16])
        return str(address.ipv4_mapped or address)
    return None  # AF_UNSPEC / AF_UNIX: no usable address


async def read_header(reader: asyncio.StreamReader, peer: str | None) -> tuple[str | None, bytes]:
    """Read a PROXY header if the connection starts with one. Returns ``(source address or
    None to keep the peer's, bytes read that belong to the FIX stream)``. Raises
    ``ProxyHeaderError`` for a malformed header or one from an untrusted peer."""
    first = await reader.read(len(V2_SIGNATURE))
    while first and len(first) < len(V2_SIGNATURE) and (
        V2_SIGNATURE.startswith(first) or V1_PREFIX.startswith(first[: len(V1_PREFIX)])
    ):
        more = await reader.read(len(V2_SIGNATURE) - len(first))
        if not more:
            break
        first += more
    is_v2 = first.startswith(V2_SIGNATURE)
    is_v1 = first.startswith(V1_PREFIX)
    if not (is_v1 or is_v2):
        return None, first
    if not trusted(peer):
        raise ProxyHeaderError(f"PROXY header from {peer}, which is not in BOURSE_TRUSTED_PROXIES")
    if is_v2:
        rest = await reader.readexactly(4)
        header = first + rest
        (length,) = struct.unpack("!H", header[14:16])
        if length > V2_MAX_PAYLOAD:
            raise ProxyHeaderError("PROXY v2 payload too long")
        payload = await reader.readexactly(length)
        return parse_v2(header, payload), b""
    line = first
    while b"\r\n" not in line:
        if len(line) >= V1_MAX:
            raise ProxyHeaderError("PROXY v1 line too long")
        chunk = await reader.read(1)
        if not chunk:
            raise ProxyHeaderError("PROXY v1 line cut short")
        line += chunk
    end = line.index(b"\r\n") + 2
    return parse_v1(line[:end]), line[end:]
