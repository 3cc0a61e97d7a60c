"""A Django test client that signs its requests like an integrator's client would."""
import json as jsonlib
import secrets
import time
from urllib.parse import urlencode

from django.test import Client

from apikeys.signing import signed_headers


def fresh_nonce() -> str:
    return secrets.token_urlsafe(18)


class SignedClient:
    """``SignedClient(key).get("/api/v1/balances", query="limit=5")``: signs method, path,
    raw query and body with the key's secret or private key. ``overrides`` replace headers
    after signing (to tamper), ``sign`` may change what is signed."""

    def __init__(self, key, client: Client | None = None, **client_kwargs):
        self.key = key
        self.client = client or Client(**client_kwargs)

    def headers(self, method, path, query="", body=b"", *, timestamp=None, nonce=None, window=None):
        return signed_headers(
            key_id=self.key.key_id,
            timestamp=timestamp if timestamp is not None else int(time.time() * 1000),
            nonce=nonce or fresh_nonce(),
            method=method,
            path=path,
            query=query,
            body=body,
            secret=getattr(self.key, "secret", None),
            private_key=getattr(self.key, "private_key", None),
            window=window,
        )

    def request(self, method, path, *, query="", body=b"", json=None, overrides=None, extra=None, **sign_kwargs):
        if isinstance(query, dict):
            query = urlencode(query)
        if json is not None:
            body = jsonlib.dumps(json).encode()
        headers = {**self.headers(method, path, query, body, **sign_kwargs), **(overrides or {})}
        headers = {name: value for name, value in headers.items() if value is not None}
        url = f"{path}?{query}" if query else path
        return self.client.generic(
            method, url, data=body, content_type="application/json", headers=headers, **(extra or {})
        )

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)
