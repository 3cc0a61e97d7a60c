"""Generated documentation: the OpenAPI document, the error catalogue, the AsyncAPI document.

Both are committed under ``docs/`` and regenerated with ``make openapi``; tests fail when a
committed copy differs from what the code generates, so the docs cannot drift.
"""
from __future__ import annotations

from pathlib import Path

from django.conf import settings

from . import asyncapi, errors

DOCS_DIR = Path(settings.BASE_DIR) / "docs"
OPENAPI_PATH = DOCS_DIR / "openapi.yaml"
ERRORS_PATH = DOCS_DIR / "errors.md"
ASYNCAPI_PATH = asyncapi.ASYNCAPI_PATH


def openapi_schema() -> dict:
    from django.test import override_settings
    from drf_spectacular.generators import SchemaGenerator

    with override_settings(BOURSE_PUBLIC_URL=""):
        return SchemaGenerator().get_schema(request=None, public=True)


def asyncapi_yaml() -> str:
    return asyncapi.asyncapi_yaml(openapi_schema()["components"]["schemas"])


def openapi_yaml() -> str:
    """The committed document: generated as for a local deployment (no ``BOURSE_PUBLIC_URL``),
    so it does not depend on the environment ``make openapi`` runs in."""
    from django.test import override_settings
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiYamlRenderer

    with override_settings(BOURSE_PUBLIC_URL=""):
        schema = SchemaGenerator().get_schema(request=None, public=True)
    return OpenApiYamlRenderer().render(schema, renderer_context={}).decode()


def errors_markdown() -> str:
    rows = sorted(errors.CATALOGUE.values(), key=lambda cls: (cls.status, cls.code))
    lines = [
        "# Error codes",
        "",
        "<!-- Generated from exchange.errors.CATALOGUE by `make openapi`; do not edit by hand. -->",
        "",
        "Every error is an RFC 9457 problem document (`Content-Type: application/problem+json`):",
        "",
        "```json",
        '{"type": "/docs/errors#insufficient_balance", "title": "Insufficient balance", "status": 422,',
        ' "detail": "Needs 1500.00 USD; 1200.00 available.", "code": "insufficient_balance",',
        ' "request_id": "5f0c6a1e2b7d4c9e8a3f1b2c4d6e8f0a", "asset": "USD", "needed": "1500.00",',
        ' "available": "1200.00"}',
        "```",
        "",
        "Branch on `code` (stable), not on `title` or `detail` (for people, may change). `errors`, when",
        "present, lists field problems as `{field, code, message}`; some codes add members of their own,",
        "named below. `request_id` is also the `X-Request-ID` response header: quote it to support.",
        "`type` is this page's section for the code (`/docs/errors#<code>`, served by Bourse; absolute",
        "when the deployment sets `BOURSE_PUBLIC_URL`).",
        "",
        "| status | code | title |",
        "|---|---|---|",
    ]
    lines += [f"| {cls.status} | [`{cls.code}`](#{cls.code}) | {cls.title} |" for cls in rows]
    lines.append("")
    for cls in rows:
        lines += [f"## {cls.code}", "", f"HTTP {cls.status} — {cls.title}.", ""]
        if cls.description:
            lines += [cls.description, ""]
        if cls.extension_fields:
            lines += ["Extension members:", ""]
            lines += [f"- `{name}` ({schema['type']}): {schema.get('description', '')}"
                      for name, schema in cls.extension_fields.items()]
            lines.append("")
    return "\n".join(lines)


def write_all() -> list[Path]:
    DOCS_DIR.mkdir(parents=True, exist_ok=True)
    OPENAPI_PATH.write_text(openapi_yaml())
    ERRORS_PATH.write_text(errors_markdown())
    ASYNCAPI_PATH.write_text(asyncapi_yaml())
    return [OPENAPI_PATH, ERRORS_PATH, ASYNCAPI_PATH]
