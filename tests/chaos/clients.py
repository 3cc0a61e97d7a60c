"""Clients of a ``Stack``: signed REST orders (with failover between REST workers, like a
load balancer), the load that runs through every fault, and probes that tell whether a role
serves again (an order answered by the engine, a WebSocket authentication, a FIX logon)."""
from __future__ import annotations

import json
import logging
import random
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from types import SimpleNamespace

import httpx

from apikeys.signing import body_sha256, sign_hmac, signed_headers, signed_string

PROBLEM_JSON = "application/problem+json"
logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the output


@dataclass
class Trader:
    account_id: int
    key_id: str
    secret: str


@dataclass
class Answer:
    status: int | None  # None: no answer (connection refused, reset, timeout)
    body: dict | None = None
    content_type: str = ""
    text: str = ""


class RestClient:
    def __init__(self, ports: list[int], timeout: float = 10.0):
        self.ports = ports
        self.http = httpx.Client(timeout=timeout)
        self._next = 0
        self.last: Answer | None = None  # the last probe's answer (failure messages)

    def close(self) -> None:
        self.http.close()

    def request(self, trader: Trader, method: str, path: str, payload: dict | None = None) -> Answer:
        body = json.dumps(payload).encode() if payload is not None else b""
        # Round-robin, and on a refused connection the next worker (what a load balancer does).
        start, self._next = self._next, self._next + 1
        for attempt in range(len(self.ports)):
            port = self.ports[(start + attempt) % len(self.ports)]
            headers = signed_headers(key_id=trader.key_id, timestamp=int(time.time() * 1000),
                                     nonce=secrets.token_urlsafe(18), method=method, path=path, body=body,
                                     secret=trader.secret)
            headers["Content-Type"] = "application/json"
            try:
                response = self.http.request(method, f"http://127.0.0.1:{port}{path}", content=body, headers=headers)
            except httpx.ConnectError:
                continue
            except httpx.HTTPError:
                return Answer(None)  # sent, but no answer: whether it was taken is unknown
            content_type = response.headers.get("content-type", "")
            try:
                parsed = response.json()
            except ValueError:
                parsed = None
            return Answer(response.status_code, parsed, content_type, response.text[:2000])
        return Answer(None)

    def order(self, trader: Trader, side: str, price: str, quantity: str, client_order_id: str | None = None) -> Answer:
        return self.request(trader, "POST", "/api/v1/orders", {
            "market": "BTC-USD", "side": side, "type": "limit", "price": price, "quantity": quantity,
            "client_order_id": client_order_id or uuid.uuid4().hex[:32],
        })


@dataclass
class LoadResult:
    acked: list[tuple[int, str]] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    bad: list[str] = field(default_factory=list)  # 500s, tracebacks, 503s that are not problem+json

    def count(self, key: str) -> None:
        self.statuses[key] = self.statuses.get(key, 0) + 1


def classify(answer: Answer, trader: Trader, client_order_id: str, result: LoadResult) -> None:
    if answer.status is None:
        result.count("no answer")
        return
    result.count(str(answer.status))
    if answer.status in (200, 201, 202):
        result.acked.append((trader.account_id, client_order_id))
    elif answer.status == 503:
        if not answer.content_type.startswith(PROBLEM_JSON) or not answer.body or answer.body.get("status") != 503:
            result.bad.append(f"503 that is not problem+json: {answer.content_type} {answer.text[:300]}")
    elif answer.status >= 500:
        result.bad.append(f"{answer.status}: {answer.content_type} {answer.text[:500]}")
    if "Traceback" in answer.text:
        result.bad.append(f"a traceback in an answer ({answer.status}): {answer.text[:500]}")


class OrderLoad:
    """Threads submitting signed limit orders around 100.00 in turn for each trader, at a
    steady pace, until stopped; every answer is classified (``LoadResult``)."""

    def __init__(self, ports: list[int], traders: list[Trader], threads: int = 2, pause_s: float = 0.05, seed: int = 17):
        self.ports, self.traders, self.pause_s = ports, traders, pause_s
        self.result = LoadResult()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.random = random.Random(seed)
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> LoadResult:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)
        return self.result

    def _run(self, index: int) -> None:
        client = RestClient(self.ports)
        n = 0
        try:
            while not self.stopping.is_set():
                trader = self.traders[(index + n) % len(self.traders)]
                n += 1
                with self.lock:
                    side = self.random.choice(("buy", "sell"))
                    price = f"{100 + self.random.randint(-50, 50) / 100:.2f}"
                    quantity = f"{self.random.randint(100, 500) / 10000:.4f}"
                cid = f"load-{index}-{uuid.uuid4().hex[:20]}"
                answer = client.order(trader, side, price, quantity, cid)
                with self.lock:
                    classify(answer, trader, cid, self.result)
                self.stopping.wait(self.pause_s)
        finally:
            client.close()


def engine_answers(client: RestClient, trader: Trader, result: LoadResult | None = None) -> bool:
    """One order far from the market (rests, never trades) that the engine gave a verdict
    (201, not 202 pending) — matching works end to end."""
    cid = f"probe-{uuid.uuid4().hex[:24]}"
    answer = client.order(trader, "buy", "50.00", "0.0400", cid)
    client.last = answer
    if result is not None:
        classify(answer, trader, cid, result)
    return answer.status == 201 and bool(answer.body) and answer.body.get("status") != "pending"


def ws_answers(port: int, trader: Trader, rest: RestClient | None = None, timeout: float = 10.0) -> bool:
    """A WebSocket connection authenticates and, given ``rest``, subscribes to its orders and
    receives the event of an order entered over REST: the server, its database reads and the
    relay's fan-out (outbox, Redis signal or poll) all work."""
    from websockets.sync.client import connect

    timestamp, nonce = int(time.time() * 1000), secrets.token_urlsafe(18)
    signature = sign_hmac(trader.secret, signed_string(timestamp, nonce, "GET", "/ws/v1", "", body_sha256(b"")))
    try:
        with connect(f"ws://127.0.0.1:{port}/ws/v1", open_timeout=timeout, close_timeout=1) as ws:
            deadline = time.monotonic() + timeout

            def frame_with(test) -> dict | None:
                while time.monotonic() < deadline:
                    frame = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
                    if frame.get("type") == "error":
                        return None
                    if test(frame):
                        return frame
                return None

            ws.send(json.dumps({"op": "auth", "key": trader.key_id, "timestamp": str(timestamp), "nonce": nonce,
                                "signature": signature, "id": "auth"}))
            if frame_with(lambda f: f.get("id") == "auth") is None:
                return False
            if rest is None:
                return True
            ws.send(json.dumps({"op": "subscribe", "channels": ["orders"], "id": "sub"}))
            if frame_with(lambda f: f.get("id") == "sub" and f.get("type") == "subscribed") is None:
                return False
            cid = f"wsprobe-{uuid.uuid4().hex[:24]}"
            answer = rest.order(trader, "buy", "50.00", "0.0400", cid)
            if answer.status not in (200, 201, 202):
                return False
            return frame_with(lambda f: f.get("channel") == "orders"
                              and (f.get("data") or {}).get("client_order_id") == cid) is not None
    except Exception:  # noqa: BLE001 - not serving (yet)
        return False


def fix_answers(port: int, trader: Trader, timeout: float = 10.0) -> bool:
    """A FIX logon is accepted and a NewOrderSingle gets its ExecutionReport: the gateway
    serves, verifies keys, enters orders and its outbox reader delivers the engine's reports."""
    from tests.fix.support import RawClient, new_order

    try:
        client = RawClient(port, SimpleNamespace(key_id=trader.key_id, secret=trader.secret, scheme="hmac"))
    except OSError:
        return False
    try:
        client.logon(reset=True)
        message = client.read(timeout)
        if message is None or message.msg_type != "A":
            return False
        cid = f"fixprobe-{uuid.uuid4().hex[:20]}"
        client.send("D", new_order(cid, side="1", qty="0.0400", price="50.00"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = client.read(max(0.1, deadline - time.monotonic()))
            if message is None:
                return False
            if message.msg_type == "8" and message.get(11) == cid:
                if message.get(39) == "8":  # rejected
                    return False
                if message.get(39) in ("0", "1", "2"):  # the engine's verdict, from the outbox reader
                    return True
        return False
    except Exception:  # noqa: BLE001 - not serving (yet)
        return False
    finally:
        client.close()


def wait_until(predicate, timeout: float, interval: float = 0.25) -> float | None:
    """Seconds until ``predicate()`` held, or None if it did not within ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    return None
