"""The source address of a request, honouring ``X-Forwarded-For`` only from trusted proxies.

IP allowlists and per-IP rate limits are only as good as the address they see. Behind a
load balancer the socket peer is the balancer, and the client is in ``X-Forwarded-For``;
but anyone can send that header, so it is believed only when the peer is one of
``BOURSE_TRUSTED_PROXIES`` (CIDRs). The header is then read right to left, skipping our
own proxies; the first address that is not one of them is the client. Without trusted
proxies the header is ignored.
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]):
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def trusted_networks():
    return _networks(tuple(getattr(settings, "BOURSE_TRUSTED_PROXIES", ())))


def _parse(address: str):
    try:
        return ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return None


def _trusted(address, networks) -> bool:
    return address is not None and any(address in net for net in networks)


def is_trusted_proxy(peer: str | None) -> bool:
    """Whether ``peer`` (an address string) is one of ``BOURSE_TRUSTED_PROXIES``."""
    return _trusted(_parse(peer or ""), trusted_networks())


def resolve(peer: str, forwarded_for: str | None) -> str:
    """The client address given the socket ``peer`` and the ``X-Forwarded-For`` header."""
    networks = trusted_networks()
    peer_ip = _parse(peer or "")
    if not forwarded_for or not _trusted(peer_ip, networks):
        return str(peer_ip) if peer_ip is not None else (peer or "")
    hops = [hop for hop in (part.strip() for part in forwarded_for.split(",")) if hop]
    for hop in reversed(hops):
        hop_ip = _parse(hop)
        if hop_ip is None:
            break  # garbage in the chain: stop at the last address we can vouch for
        if not _trusted(hop_ip, networks):
            return str(hop_ip)
        peer_ip = hop_ip
    return str(peer_ip)


META_KEY = "bourse.client_ip"  # a WSGI-style extension key: resolved once per request


def client_ip(request) -> str:
    """The client address of a Django (or DRF) request."""
    meta = request.META
    cached = meta.get(META_KEY)
    if cached is None:
        cached = meta[META_KEY] = resolve(meta.get("REMOTE_ADDR", ""), meta.get("HTTP_X_FORWARDED_FOR"))
    return cached
