"""The guides served under /docs/: every page renders with navigation and nothing from
elsewhere, every link between them resolves (anchors included), and every problem `type`
URI lands on its entry of the error catalogue."""
import re
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest
from django.test import Client

from exchange import errors, guides

pytestmark = pytest.mark.django_db


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids, self.assets = [], set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href") is not None:
            self.links.append(attrs["href"])
        if tag in ("script", "img", "iframe") and attrs.get("src"):
            self.assets.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.assets.append(attrs["href"])


def fetch(client, url):
    response = client.get(url)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response, body


def parse(body: bytes) -> _Links:
    parser = _Links()
    parser.feed(body.decode())
    return parser


def crawl():
    """Every page reachable from /docs/ (following links under /docs/ and the API explorer)."""
    client = Client()
    pages, todo, links = {}, ["/docs/"], []
    while todo:
        url = todo.pop()
        if url in pages:
            continue
        response, body = fetch(client, url)
        assert response.status_code == 200, url
        is_html = response["Content-Type"].startswith("text/html")
        pages[url] = parse(body) if is_html and url.startswith("/docs/") else None
        if pages[url] is None:
            continue
        for href in pages[url].links:
            target = urljoin(url, href)
            if urlsplit(target).scheme or target.startswith("//"):
                continue  # a link to another site (RFCs, specs): not ours to serve
            links.append((url, target))
            path, _ = urldefrag(target)
            if path not in pages:
                todo.append(path)
    return pages, links


def test_every_guide_is_served_with_navigation_and_no_outside_assets():
    client = Client()
    for page in [*guides.PAGES, guides.Page("asyncapi", "", "")]:
        response, body = fetch(client, f"/docs/{page.slug}")
        assert response.status_code == 200, page.slug
        parsed = parse(body)
        assert parsed.assets == [], (page.slug, parsed.assets)  # inline style only, no scripts
        assert {f"/docs/{p.slug}" for p in guides.PAGES} <= set(parsed.links), page.slug
        assert {"/api/docs", "/docs/openapi.yaml", "/docs/asyncapi.yaml", "/docs/fix44-bourse.xml"} <= set(parsed.links)
        assert not re.search(rb'(?:src|href)="(?:https?:)?//[^"]*\.(?:js|css)', body)


def test_every_link_and_anchor_resolves():
    pages, links = crawl()
    assert {f"/docs/{p.slug}" for p in guides.PAGES} <= set(pages)
    for source, target in links:
        path, fragment = urldefrag(target)
        assert not path.endswith(".md"), (source, target)  # a link left pointing at a Markdown file
        if fragment and pages.get(path) is not None:
            assert fragment in pages[path].ids, f"{source} links to {target}: no such anchor"


@pytest.mark.parametrize("public_url", ["", "https://bourse.example.net"])
def test_every_problem_type_uri_resolves(settings, public_url):
    settings.BOURSE_PUBLIC_URL = public_url
    client = Client()
    _, body = fetch(client, "/docs/errors")
    anchors = parse(body).ids
    for code, cls in errors.CATALOGUE.items():
        uri = cls().as_problem()["type"] if cls is not errors.RateLimited else errors.type_uri(code)
        assert uri == f"{public_url}/docs/errors#{code}"
        path, fragment = urldefrag(urlsplit(uri).path + "#" + urlsplit(uri).fragment)
        assert fetch(client, path)[0].status_code == 200 and fragment in anchors, uri


def test_a_real_problem_links_to_its_entry(settings):
    settings.BOURSE_PUBLIC_URL = "https://bourse.example.net"
    problem = Client().get("/api/v1/markets/NOPE-USD").json()
    assert problem["type"] == "https://bourse.example.net/docs/errors#not_found"


def test_unknown_pages_are_404():
    assert Client().get("/docs/nope").status_code == 404
    assert Client().get("/docs/examples/nope.py").status_code == 404


def test_the_make_run_banner_points_at_docs_explorer_and_websocket():
    from exchange.management.commands.run_embedded import banner

    text = banner("127.0.0.1", 8000)
    urls = re.findall(r"http://127\.0\.0\.1:8000(/[^\s)]*)", text)
    assert {"/docs/", "/api/docs", "/api/v1/openapi.yaml", "/docs/asyncapi", "/docs/fix44-bourse.xml"} <= set(urls)
    assert "ws://127.0.0.1:8000/ws/v1" in text
    client = Client()
    for path in urls:
        assert fetch(client, path)[0].status_code == 200, path
