"""REST load benchmark (issue: public REST API): signed order placements per second and
their latency, against a production-configured server, with a signed no-op endpoint
(`GET /api/v1/account`) measured in the same run as the baseline.

It starts the server itself (gunicorn, WSGI, `--workers`/`--threads`) and an engine process
on 127.0.0.1, against DATABASE_URL/REDIS_URL, creates traders with `trader_create`, and
drives them with a small asyncio HTTP/1.1 client over keep-alive connections (no third-
party client), each request signed exactly as docs/signing.md says.

Phases: (1) closed loop, `--connections` concurrent clients for `--seconds`: the highest
rate of GET /account and of POST /orders (crossing limit orders, so the engine matches and
settlement runs); (2) open loop at `--rate` orders/s: p50/p99 latency of POST /orders.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bourse_bench REDIS_URL=redis://127.0.0.1:6379/5 \\
    BOURSE_ALLOW_GENERATED_SECRETS=1 .venv/bin/python bench/rest_load.py [--workers 3 --threads 8]

Rate limits are raised for the run (env of the server process) so they do not cap it.
"""
import argparse
import asyncio
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from apikeys.services import trader_create  # noqa: E402
from apikeys.signing import signed_headers  # noqa: E402
from trading.services import market_create  # noqa: E402

SERVER_ENV = {
    "BOURSE_RATE_LIMIT_KEY": "100000000/60",
    "BOURSE_RATE_LIMIT_ORDERS": "100000000/10",
    "BOURSE_RATE_LIMIT_IP": "100000000/60",
    "LOG_LEVEL": "WARNING",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Connection:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, port, credentials):
        self.port, self.key_id, self.secret = port, credentials["key_id"], credentials["secret"]

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def request(self, method, path, body=b""):
        headers = signed_headers(key_id=self.key_id, timestamp=int(time.time() * 1000),
                                 nonce=secrets.token_urlsafe(18), method=method, path=path, body=body,
                                 secret=self.secret)
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", "Content-Type: application/json",
                 f"Content-Length: {len(body)}"] + [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        payload = await self.reader.readexactly(length)
        return int(status_line.split()[1]), payload


def order_body(rng, symbol):
    side = rng.choice(["buy", "sell"])
    price = 100 + rng.randint(-3, 3) / 100  # a tight band: many orders cross
    return json.dumps({"market": symbol, "side": side, "type": "limit", "price": f"{price:.2f}",
                       "quantity": f"{rng.randint(200, 900) / 10000:.4f}"}).encode()


async def closed_loop(port, traders, connections, seconds, make_request):
    done, latencies, statuses = 0, [], {}
    deadline = time.perf_counter() + seconds

    async def worker(index):
        nonlocal done
        conn = Connection(port, traders[index % len(traders)])
        await conn.open()
        rng = random.Random(index)
        while time.perf_counter() < deadline:
            method, path, body = make_request(rng)
            started = time.perf_counter()
            status, _ = await conn.request(method, path, body)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
            done += 1
        conn.writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    return done / (time.perf_counter() - started), latencies, statuses


async def open_loop(port, traders, rate, seconds, make_request, connections=64):
    """Requests start on a fixed schedule; each waits for a free connection (queueing time
    counts: that is what a client sees)."""
    pool = asyncio.Queue()
    for i in range(connections):
        conn = Connection(port, traders[i % len(traders)])
        await conn.open()
        pool.put_nowait(conn)
    latencies, statuses, tasks = [], {}, []
    rng = random.Random(7)

    async def one(scheduled):
        conn = await pool.get()
        method, path, body = make_request(rng)
        status, _ = await conn.request(method, path, body)
        latencies.append(time.perf_counter() - scheduled)
        statuses[status] = statuses.get(status, 0) + 1
        pool.put_nowait(conn)

    start = time.perf_counter()
    for n in range(int(rate * seconds)):
        scheduled = start + n / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    return latencies, statuses


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rate", type=int, default=500)
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    tag = "".join(random.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(5))
    symbol = f"R{tag}-USD"
    market_create(symbol=symbol, tick_size="0.01", lot_size="0.0001", min_notional="1", maker_fee_rate="0.001",
                  taker_fee_rate="0.002", base_scale=8, quote_scale=6)
    traders = []
    for i in range(16):
        created = trader_create(name=f"rest-{tag}-{i}", deposits=[("USD", "100000000"), (f"R{tag}", "1000000")])
        traders.append({"key_id": created.credentials.key.key_id, "secret": created.credentials.secret})

    port = free_port()
    env = {**os.environ, **SERVER_ENV}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "exchange.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(args.workers),
         "-k", "gthread", "--threads", str(args.threads), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engine = subprocess.Popen([sys.executable, "manage.py", "run_engine", "--markets", symbol], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        time.sleep(2)  # the engine owns the market

        def account(rng):
            return "GET", "/api/v1/account", b""

        def order(rng):
            return "POST", "/api/v1/orders", order_body(rng, symbol)

        noop_rate, noop_lat, noop_status = asyncio.run(closed_loop(port, traders, args.connections, args.seconds, account))
        order_rate, order_lat, order_status = asyncio.run(closed_loop(port, traders, args.connections, args.seconds, order))
        fixed_lat, fixed_status = asyncio.run(open_loop(port, traders, args.rate, args.seconds, order))
    finally:
        for process in (server, engine):
            process.terminate()
            process.wait(15)

    ms = lambda v: f"{v * 1000:.1f} ms"  # noqa: E731
    print(f"server: gunicorn gthread {args.workers}x{args.threads}, engine process, {django.db.connection.vendor}"
          f"{' + Redis' if os.environ.get('REDIS_URL') else ''}; client: {args.connections} keep-alive connections")
    print(f"GET /api/v1/account (signed no-op): {noop_rate:,.0f} req/s, p50 {ms(percentile(noop_lat, .5))}, "
          f"p99 {ms(percentile(noop_lat, .99))}, statuses {noop_status}")
    print(f"POST /api/v1/orders (signed, engine verdict): {order_rate:,.0f} orders/s, p50 {ms(percentile(order_lat, .5))}, "
          f"p99 {ms(percentile(order_lat, .99))}, statuses {order_status}")
    print(f"ratio orders/no-op: {order_rate / noop_rate:.2f}")
    print(f"at {args.rate} orders/s (open loop): p50 {ms(percentile(fixed_lat, .5))}, p99 {ms(percentile(fixed_lat, .99))}, "
          f"statuses {fixed_status}")


if __name__ == "__main__":
    main()
