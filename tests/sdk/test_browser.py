"""The SDK in a real browser (Debian's headless Chromium through Playwright, as the console's
browser tests): the ES module build loads with nothing but an import map (no Node built-ins),
Web Crypto reproduces the published signing vectors (HMAC and Ed25519), and a `Bourse` client
makes a signed request that the server-side signing code verifies.

No database: a small same-origin HTTP server serves the built package and answers one signed
endpoint (a browser page cannot call a Bourse on another origin without CORS)."""
import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from apikeys import signing
from tests.sdk.helpers import ROOT, SDK

CHROMIUM = Path(os.environ.get("BOURSE_CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]
SECRET = "browser-secret-not-real"
KEY_ID = "bk_browser"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: apt-get install -y chromium chromium-driver"),
]


def published_vectors() -> tuple[dict, list[dict]]:
    doc = (ROOT / "docs" / "signing.md").read_text()
    shared = {name: re.search(rf"^{name}\s+(\S+)", doc, re.M).group(1) for name in ("hmac secret", "ed25519 private key")}
    vectors = []
    for block in re.findall(r"```vector\n(.*?)```", doc, re.S):
        fields = {}
        for line in block.splitlines():
            name, _, value = line.partition(" ")
            fields[name] = value.strip()
        vectors.append(fields)
    return shared, vectors


PAGE = """<!doctype html><html><body><pre id="result"></pre>
<script type="importmap">{"imports": {"openapi-fetch": "/sdk/node_modules/openapi-fetch/dist/index.mjs"}}</script>
<script type="module">
import { Bourse, BourseError, createSigner, signRequest } from "/sdk/dist/esm/index.js";
const input = %s;
const out = { signatures: [], subtle: typeof crypto.subtle === "object" };
try {
  for (const v of input.vectors) {
    const signer = createSigner(v.scheme === "hmac" ? { secret: input.shared["hmac secret"] } : { privateKey: input.shared["ed25519 private key"] });
    out.signatures.push(await signRequest(signer, { timestamp: v.timestamp, nonce: v.nonce, method: v.method, path: v.path, query: v.query, body: v.body }));
  }
  const client = new Bourse({ baseUrl: location.origin, key: input.key, secret: input.secret });
  out.account = await client.account();
  out.rateLimit = client.rateLimit;
  try { await new Bourse({ baseUrl: location.origin, key: input.key, secret: "wrong" }).account(); }
  catch (e) { out.refusal = e instanceof BourseError ? [e.status, e.code, e.requestId] : String(e); }
} catch (e) { out.failure = String(e && e.stack || e); }
document.getElementById("result").textContent = JSON.stringify(out);
</script></body></html>"""


class Handler(BaseHTTPRequestHandler):
    page = ""
    seen: list = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        parts = urlsplit(self.path)
        if parts.path == "/page.html":
            return self._send(200, self.page.encode(), "text/html")
        if parts.path == "/api/v1/account":
            return self._account(parts)
        allowed = ("/sdk/dist/", "/sdk/node_modules/openapi-fetch/dist/")
        if parts.path.startswith(allowed) and ".." not in parts.path:
            file = SDK / parts.path.removeprefix("/sdk/")
            if file.is_file():
                return self._send(200, file.read_bytes(), "text/javascript")
        return self._send(404, b"not found", "text/plain")

    def _account(self, parts):
        h = self.headers
        self.seen.append({name.lower(): value for name, value in h.items()})
        message = signing.signed_string(h.get("X-API-Timestamp", ""), h.get("X-API-Nonce", ""), "GET", parts.path,
                                        parts.query, signing.body_sha256(b""))
        limits = {"RateLimit-Policy": '"key";q=1200;w=60', "RateLimit": '"key";r=1199;t=60', "X-Request-ID": "browser-1"}
        if h.get("X-API-Key") != KEY_ID or h.get("X-API-Signature") != signing.sign_hmac(SECRET, message):
            problem = {"type": "/docs/errors#invalid_credentials", "title": "Invalid credentials", "status": 401,
                       "detail": "bad signature", "code": "invalid_credentials", "request_id": "browser-2"}
            return self._send(401, json.dumps(problem).encode(), "application/problem+json")
        body = {"account_id": "42", "name": "browser", "created_at": "2026-11-24T00:00:00.000000Z",
                "api_key": {"key_id": KEY_ID, "label": "", "scheme": "hmac", "scopes": ["read"], "ip_allowlist": [],
                            "expires_at": None, "created_at": "2026-11-24T00:00:00.000000Z"}}
        return self._send(200, json.dumps(body).encode(), "application/json", limits)


@pytest.fixture
def page_server(compiled):
    shared, vectors = published_vectors()
    Handler.page = PAGE % json.dumps({"shared": shared, "vectors": vectors, "key": KEY_ID, "secret": SECRET})
    Handler.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", vectors
    finally:
        server.shutdown()
        server.server_close()


def test_sdk_in_a_browser(page_server):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (requirements-test.txt)")
    url, vectors = page_server
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        try:
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{url}/page.html")
            deadline = time.monotonic() + 30
            while not page.inner_text("#result") and time.monotonic() < deadline and not errors:
                page.wait_for_timeout(100)
            result = json.loads(page.inner_text("#result") or "{}")
        finally:
            browser.close()
    assert not errors and "failure" not in result, (errors, result)
    assert result["subtle"] is True
    assert result["signatures"] == [v["signature"] for v in vectors]
    assert result["account"]["account_id"] == "42"
    assert result["rateLimit"]["limits"] == [{"name": "key", "remaining": 1199, "resetSeconds": 60}]
    assert result["refusal"] == [401, "invalid_credentials", "browser-2"]
    assert Handler.seen[0]["x-api-key"] == KEY_ID and re.fullmatch(r"[A-Za-z0-9_-]{24}", Handler.seen[0]["x-api-nonce"])
