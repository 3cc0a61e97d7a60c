"""Clients of the three order-entry transports against real servers, for the live tests: REST
over HTTP to a daphne (signed with urllib), WebSocket to a daphne (the ``websockets`` client),
and the real processes they need (engine)."""
from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request

from tests.signed import SignedClient, fresh_nonce
from tests.support import PYTHON, subprocess_env
from tests.ws.helpers import auth_op, checked_frame


def start_engine(markets: str = "BTC-USD", **env_extra) -> subprocess.Popen:
    env = {**subprocess_env(), **env_extra}
    return subprocess.Popen([PYTHON, "manage.py", "run_engine", "--markets", markets],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen, *, kill: bool = False) -> str:
    if process.poll() is None:
        if kill:
            process.kill()
        else:
            process.terminate()
    try:
        out, _ = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return (out or b"").decode(errors="replace")


def wait_for(predicate, timeout=20.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


class Rest:
    """Signed HTTP requests to a live server: ``(status, json body)``."""

    def __init__(self, base_url: str, key):
        self.base = base_url
        self.signer = SignedClient(key)

    def request(self, method: str, path: str, body=None) -> tuple[int, dict]:
        path = f"/api/v1{path}"
        data = json.dumps(body).encode() if body is not None else b""
        headers = self.signer.headers(method, path.split("?")[0], path.partition("?")[2], data, nonce=fresh_nonce())
        headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base + path, data=data if body is not None else None, headers=headers,
                                         method=method)
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def post(self, path, body):
        return self.request("POST", path, body)

    def get(self, path):
        return self.request("GET", path)

    def delete(self, path):
        return self.request("DELETE", path)


class Ws:
    """A ``websockets`` connection, authenticated; ``ask`` sends an op and returns its answer
    (frames of subscribed channels that arrive meanwhile are kept in ``events``)."""

    def __init__(self, url: str, key, **auth_extra):
        from websockets.sync.client import connect

        self._connection = connect(url, open_timeout=10)
        self.conn = self._connection.__enter__()
        self.events: list[dict] = []
        self.next_id = 0
        reply = self.ask(auth_op(key, **auth_extra))
        assert reply["type"] == "auth", reply

    def ask(self, message: dict, timeout=15.0) -> dict:
        self.next_id += 1
        message = {**message, "id": f"r{self.next_id}"}
        self.conn.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            frame = checked_frame(self.conn.recv(timeout=max(0.01, deadline - time.monotonic())))
            if frame.get("id") == message["id"] and "channel" not in frame:
                return frame
            self.events.append(frame)

    def close(self):
        self._connection.__exit__(None, None, None)
