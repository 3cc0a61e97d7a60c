"""Deprecation (RFC 9745) and Sunset (RFC 8594) response headers, driven by the OpenAPI document.

An operation marked ``deprecated: true`` in the published docs/openapi.yaml (``extend_schema(
deprecated=True, extensions={"x-deprecated-at": "YYYY-MM-DD", "x-sunset": "YYYY-MM-DD"})`` on
its view) gets, on every response, ``Deprecation: @<epoch seconds>``, ``Sunset: <HTTP date>``
when a sunset is set, and a ``Link`` to the changelog with ``rel="deprecation"``. The document
is the single source: what it says is deprecated is what the server announces
(docs/versioning.md).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import format_datetime

import yaml
from django.conf import settings


@dataclass(frozen=True)
class Deprecation:
    pattern: re.Pattern
    method: str
    deprecated_at: datetime
    sunset: datetime | None


def _moment(value) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).replace(tzinfo=UTC)


def table_from(spec: dict) -> list[Deprecation]:
    out = []
    for path, item in spec.get("paths", {}).items():
        regex = re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$")
        for method, operation in item.items():
            if not isinstance(operation, dict) or not operation.get("deprecated"):
                continue
            if "x-deprecated-at" not in operation:
                raise ValueError(f"{method.upper()} {path} is deprecated without x-deprecated-at")
            sunset = operation.get("x-sunset")
            out.append(Deprecation(regex, method.upper(), _moment(operation["x-deprecated-at"]),
                                   _moment(sunset) if sunset else None))
    return out


@functools.lru_cache(maxsize=1)
def table() -> list[Deprecation]:
    from .docs import OPENAPI_PATH

    return table_from(yaml.safe_load(OPENAPI_PATH.read_text()))


def headers_for(method: str, path: str) -> dict[str, str]:
    for entry in table():
        if entry.method == method and entry.pattern.match(path):
            headers = {
                "Deprecation": f"@{int(entry.deprecated_at.timestamp())}",
                "Link": f'<{settings.BOURSE_PUBLIC_URL}/docs/changelog>; rel="deprecation"; type="text/html"',
            }
            if entry.sunset:
                headers["Sunset"] = format_datetime(entry.sunset, usegmt=True)
            return headers
    return {}


class DeprecationHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith("/api/"):
            for name, value in headers_for(request.method, request.path).items():
                response[name] = value
        return response
