"""Bourse quickstart client: read the server time, your account and your balances.

    BOURSE_URL=http://127.0.0.1:8000 BOURSE_KEY_ID=bk_... BOURSE_SECRET=... python quickstart.py

HMAC keys need only the Python standard library. For an Ed25519 key set BOURSE_PRIVATE_KEY
(base64 of the 32-byte seed) instead of BOURSE_SECRET; that needs `pip install cryptography`.
"""
import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request

BASE_URL = os.environ.get("BOURSE_URL", "http://127.0.0.1:8000").rstrip("/")
KEY_ID = os.environ["BOURSE_KEY_ID"]
SECRET = os.environ.get("BOURSE_SECRET")
PRIVATE_KEY = os.environ.get("BOURSE_PRIVATE_KEY")


def signature(message: bytes) -> str:
    if SECRET is not None:
        return base64.b64encode(hmac.new(SECRET.encode(), message, hashlib.sha256).digest()).decode()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(PRIVATE_KEY))
    return base64.b64encode(private_key.sign(message)).decode()


def call(method: str, path: str, query: str = "", body: bytes = b"", signed: bool = True):
    """One request; returns the decoded JSON body. Raises SystemExit with the problem on error."""
    headers = {"Accept": "application/json"}
    if body:
        headers["Content-Type"] = "application/json"
    if signed:
        timestamp = str(int(time.time() * 1000))
        nonce = secrets.token_urlsafe(18)  # 24 characters of A-Za-z0-9_-
        message = "\n".join([timestamp, nonce, method, path, query, hashlib.sha256(body).hexdigest()])
        headers.update({
            "X-API-Key": KEY_ID,
            "X-API-Timestamp": timestamp,
            "X-API-Nonce": nonce,
            "X-API-Signature": signature(message.encode()),
        })
    url = BASE_URL + path + ("?" + query if query else "")
    request = urllib.request.Request(url, data=body or None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            print(f"{method} {path}: {response.status}, RateLimit {response.headers.get('RateLimit')}", file=sys.stderr)
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        problem = json.loads(error.read() or b"{}")
        raise SystemExit(f"{method} {path} refused: {error.code} {problem.get('code')}: {problem.get('detail')}") from None


def main() -> None:
    server = call("GET", "/api/v1/time", signed=False)
    print(f"server time {server['server_time']} (clock offset {server['epoch_ms'] - int(time.time() * 1000)} ms)")
    account = call("GET", "/api/v1/account")
    print(f"account {account['account_id']} ({account['name']}), key scopes {','.join(account['api_key']['scopes'])}")
    balances = call("GET", "/api/v1/balances")
    for row in balances["results"]:
        print(f"{row['asset']:<6} total {row['total']:>22} available {row['available']:>22} locked {row['locked']:>22}")
    ledger = call("GET", "/api/v1/ledger", query="limit=3")
    for entry in ledger["results"]:
        print(f"ledger {entry['created_at']} {entry['kind']:<10} {entry['asset']} {entry['amount']} ({entry['bucket']})")


if __name__ == "__main__":
    main()
