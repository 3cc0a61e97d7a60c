"""Parsing of the IETF RateLimit fields (docs/rate-limits.md)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["RateLimit", "Policy", "Limit", "parse_rate_limit"]

_ITEM = re.compile(r'\s*"([^"]*)"\s*((?:;\s*[a-z]+=[^,;]*)*)')


@dataclass(frozen=True)
class Policy:
    name: str
    quota: int
    window: int


@dataclass(frozen=True)
class Limit:
    name: str
    remaining: int
    reset: int


@dataclass(frozen=True)
class RateLimit:
    policies: list[Policy] = field(default_factory=list)
    limits: list[Limit] = field(default_factory=list)

    def remaining(self, name: str) -> int | None:
        return next((lim.remaining for lim in self.limits if lim.name == name), None)


def _items(value: str) -> list[tuple[str, dict[str, str]]]:
    out: list[tuple[str, dict[str, str]]] = []
    for part in _split(value):
        match = _ITEM.fullmatch(part)
        if not match:
            continue
        params = {}
        for param in match.group(2).split(";"):
            if "=" in param:
                k, v = param.split("=", 1)
                params[k.strip()] = v.strip()
        out.append((match.group(1), params))
    return out


def _split(value: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = False
    for ch in value:
        if ch == '"':
            depth = not depth
        if ch == "," and not depth:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def parse_rate_limit(policy_header: str | None, limit_header: str | None) -> RateLimit | None:
    """``RateLimit-Policy: "key";q=1200;w=60`` and ``RateLimit: "key";r=1187;t=41``; None without them."""
    if not policy_header and not limit_header:
        return None
    policies = [Policy(name, int(p.get("q", 0)), int(p.get("w", 0))) for name, p in _items(policy_header or "")]
    limits = [Limit(name, int(p.get("r", 0)), int(p.get("t", 0))) for name, p in _items(limit_header or "")]
    return RateLimit(policies, limits)
