"""Generated docs are current, served, and render offline."""
import re

import pytest
import yaml
from django.test import Client

from exchange import docs, errors

pytestmark = pytest.mark.django_db

REGENERATE = "stale: run `make openapi` and commit the result"


def test_committed_openapi_is_current():
    assert docs.OPENAPI_PATH.read_text() == docs.openapi_yaml(), REGENERATE


def test_committed_error_catalogue_is_current():
    assert docs.ERRORS_PATH.read_text() == docs.errors_markdown(), REGENERATE


def test_every_code_is_documented_with_its_status():
    text = docs.ERRORS_PATH.read_text()
    for code, cls in errors.CATALOGUE.items():
        assert f"| {cls.status} | [`{code}`](#{code}) |" in text
        assert f"\n## {code}\n" in text


def test_openapi_is_served_and_matches_the_committed_document():
    response = Client().get("/api/v1/openapi.yaml")
    assert response.status_code == 200
    served = yaml.safe_load(response.content)
    assert served == yaml.safe_load(docs.OPENAPI_PATH.read_text())
    assert served["openapi"] == "3.1.0"


def test_openapi_describes_signing_and_every_error():
    spec = yaml.safe_load(docs.OPENAPI_PATH.read_text())
    schemes = spec["components"]["securitySchemes"]
    assert {s["name"] for s in schemes.values()} == {"X-API-Key", "X-API-Timestamp", "X-API-Nonce", "X-API-Signature"}
    account = spec["paths"]["/api/v1/account"]["get"]
    assert account["security"] == [{name: [] for name in schemes}]
    assert {"200", "401", "403", "429"} <= set(account["responses"])
    assert "Retry-After" in account["responses"]["429"]["headers"]
    assert "RateLimit" in account["responses"]["200"]["headers"]
    public = spec["paths"]["/api/v1/time"]["get"]
    assert public.get("security") in (None, [], [{}])


@pytest.mark.parametrize("url", ["/api/docs", "/api/docs/redoc"])
def test_docs_ui_works_offline(url):
    client = Client()
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    # Swagger UI starts from a script of its own URL (no inline script, for the CSP).
    script = re.search(r'<script src="(/api/docs\?script=[^"]*)"', html)
    start = client.get(script.group(1).replace("&amp;", "&")).content.decode() if script else html
    assert "/api/v1/openapi.yaml" in start
    assert not re.findall(r'(?:src|href)="(?:https?:)?//', html), "the docs page must not load anything from elsewhere"
    # every script and stylesheet is served by us (drf-spectacular-sidecar), none from a CDN
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
    assert assets and all(a.startswith("/static/") for a in assets), assets
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert len(body) > 1000, asset
