"""The integrator guides, served by Bourse itself under ``/docs/``.

The Markdown files under ``docs/`` (and CHANGELOG.md, the Python and TypeScript SDKs' READMEs) are the
single source: each is rendered to HTML once per process (Python-Markdown, pinned), its
links between files rewritten to the served URLs, and shown with a navigation bar and an
inline stylesheet, so the pages load nothing from elsewhere. Problem ``type`` URIs
(``/docs/errors#<code>``) land on the rendered error catalogue. The machine-readable
contracts (OpenAPI, AsyncAPI, the FIX data dictionary) and the runnable examples are served
as files next to the pages.
"""
from __future__ import annotations

import functools
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

import markdown
from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse
from django.template.loader import render_to_string
from django.utils.html import escape

ROOT = Path(settings.BASE_DIR)


@dataclass(frozen=True)
class Page:
    slug: str
    source: str  # path from the repository root
    title: str


PAGES = [
    Page("quickstart", "docs/quickstart.md", "Quickstart"),
    Page("signing", "docs/signing.md", "Signing requests"),
    Page("trading", "docs/trading.md", "Trading"),
    Page("websocket", "docs/websocket.md", "WebSocket API"),
    Page("fix", "docs/fix.md", "FIX 4.4"),
    Page("errors", "docs/errors.md", "Errors"),
    Page("rate-limits", "docs/rate-limits.md", "Rate limits"),
    Page("versioning", "docs/versioning.md", "Versioning"),
    Page("changelog", "CHANGELOG.md", "Changelog"),
    Page("sdk-python", "sdk/python/README.md", "Python SDK and ccxt"),
    Page("sdk-typescript", "sdk/typescript/README.md", "TypeScript SDK"),
]
BY_SLUG = {page.slug: page for page in PAGES}
# Files served as they are: the machine-readable contracts and the runnable examples.
FILES = {
    "openapi.yaml": ("docs/openapi.yaml", "application/yaml"),
    "asyncapi.yaml": ("docs/asyncapi.yaml", "application/yaml"),
    "fix44-bourse.xml": ("docs/fix44-bourse.xml", "application/xml"),
}
EXAMPLES_DIR = "docs/examples"


def _target_url(source: str, href: str) -> str:
    """The served URL of a relative link ``href`` found in the file ``source``."""
    if re.match(r"^[a-z][a-z0-9+.-]*:|^/|^#", href):
        return href  # absolute, root-relative or in-page: unchanged
    path, _, fragment = href.partition("#")
    target = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
    suffix = f"#{fragment}" if fragment else ""
    for page in PAGES:
        if page.source == target:
            return f"/docs/{page.slug}{suffix}"
    for name, (file_source, _) in FILES.items():
        if file_source == target:
            return f"/docs/{name}{suffix}"
    release = re.fullmatch(r"docs/releases/(v\d+\.\d+\.\d+)/openapi\.yaml", target)
    if release:
        return f"/docs/releases/{release.group(1)}/openapi.yaml{suffix}"
    if target == EXAMPLES_DIR:
        return "/docs/examples/"
    if posixpath.dirname(target) == EXAMPLES_DIR:
        return f"/docs/examples/{posixpath.basename(target)}"
    return href  # not served: the link check reports it


def _rewrite_links(source: str, html: str) -> str:
    return re.sub(r'href="([^"]*)"', lambda m: f'href="{escape(_target_url(source, m.group(1)))}"', html)


@functools.cache
def render(slug: str) -> tuple[str, str]:
    """(title, HTML body) of a guide page."""
    page = BY_SLUG[slug]
    text = (ROOT / page.source).read_text()
    md = markdown.Markdown(extensions=["tables", "fenced_code", "toc"], extension_configs={"toc": {"permalink": False}})
    return page.title, _rewrite_links(page.source, md.convert(text))


def _index_body() -> str:
    ws = "wss://<your host>/ws/v1" if not settings.BOURSE_PUBLIC_URL else (
        settings.BOURSE_PUBLIC_URL.replace("https://", "wss://").replace("http://", "ws://") + "/ws/v1")
    items = "".join(f'<li><a href="/docs/{p.slug}">{escape(p.title)}</a></li>' for p in PAGES)
    return (
        "<h1>Bourse integrator documentation</h1>"
        f"<h2>Guides</h2><ul>{items}</ul>"
        "<h2>Contracts</h2><ul>"
        '<li><a href="/api/docs">API explorer</a> (Swagger UI) and <a href="/api/docs/redoc">reference</a> (Redoc) '
        'of the REST API; the OpenAPI 3.1 document: <a href="/docs/openapi.yaml">openapi.yaml</a></li>'
        '<li>WebSocket API (<code>' + escape(ws) + '</code>): <a href="/docs/asyncapi">AsyncAPI reference</a>, '
        'the AsyncAPI 3.0 document: <a href="/docs/asyncapi.yaml">asyncapi.yaml</a></li>'
        '<li>FIX 4.4: the QuickFIX data dictionary <a href="/docs/fix44-bourse.xml">fix44-bourse.xml</a></li>'
        '<li>Runnable examples: <a href="/docs/examples/">docs/examples</a></li>'
        "</ul>"
    )


def _page(title: str, body: str, current: str = "") -> HttpResponse:
    html = render_to_string("docs/page.html", {"title": title, "body": body, "pages": PAGES, "current": current})
    return HttpResponse(html)


def index(request):
    return _page("Bourse documentation", _index_body())


def page(request, slug: str):
    if slug == "asyncapi":
        from .asyncapi import render_html

        return _page("WebSocket API reference (AsyncAPI)", render_html(), "asyncapi")
    if slug not in BY_SLUG:
        raise Http404(f"No documentation page {slug!r}.")
    title, body = render(slug)
    return _page(title, body, slug)


def contract_file(request, name: str):
    if name not in FILES:
        raise Http404(name)
    source, content_type = FILES[name]
    return FileResponse(open(ROOT / source, "rb"), content_type=f"{content_type}; charset=utf-8")


def released_openapi(request, version: str):
    path = ROOT / "docs" / "releases" / version / "openapi.yaml"
    if not re.fullmatch(r"v\d+\.\d+\.\d+", version) or not path.exists():
        raise Http404(version)
    return FileResponse(open(path, "rb"), content_type="application/yaml; charset=utf-8")


def examples(request, name: str = ""):
    folder = ROOT / EXAMPLES_DIR
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    if not name:
        items = "".join(f'<li><a href="/docs/examples/{n}">{escape(n)}</a></li>' for n in names)
        return _page("Examples", f"<h1>Runnable examples</h1><ul>{items}</ul>", "examples")
    if name not in names:
        raise Http404(name)
    return FileResponse(open(folder / name, "rb"), content_type="text/plain; charset=utf-8")
