"""Where the web side of one signed order placement spends its time: cProfile over N signed
`POST /api/v1/orders` through Django's full request handler (every middleware, DRF,
authentication, the order service) in this process, with the SQL statements and Redis
commands each request issues counted. The engine is not running and the view does not wait
for its verdict (`BOURSE_ENGINE_WAIT_S=0`): this is the cost in front of the engine.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bourse_bench REDIS_URL=redis://127.0.0.1:6379/5 \\
    BOURSE_ALLOW_GENERATED_SECRETS=1 BOURSE_DATA_DIR=/tmp/benchdata LOG_LEVEL=WARNING \\
    .venv/bin/python bench/profile_order.py --orders 300 [--top 35]

Prints CPU ms per placement (process time, so other load on the machine does not count),
statements and Redis commands per placement, and the top functions by cumulative time.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")
os.environ["BOURSE_ENGINE_WAIT_S"] = "0"
for name in ("KEY", "ORDERS", "IP", "AUTH_FAILURES"):
    os.environ[f"BOURSE_RATE_LIMIT_{name}"] = "100000000/60"

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from apikeys.services import trader_create  # noqa: E402
from apikeys.signing import signed_headers  # noqa: E402
from trading.services import market_create  # noqa: E402


def redis_counter():
    """Count Redis commands issued by this process (0 without REDIS_URL)."""
    counts = {"n": 0}
    try:
        import redis.connection
    except ImportError:
        return counts
    original = redis.connection.AbstractConnection.send_command

    def counted(self, *args, **kwargs):
        counts["n"] += 1
        return original(self, *args, **kwargs)

    redis.connection.AbstractConnection.send_command = counted
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--no-profile", action="store_true", help="CPU per placement without the profiler's overhead")
    args = parser.parse_args()

    from benchdb import prepare  # bench/ (the script's folder) is on the path

    print(prepare(), flush=True)
    tag = "".join(random.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(5))
    symbol = f"P{tag}-USD"
    market_create(symbol=symbol, tick_size="0.01", lot_size="0.0001", min_notional="1", maker_fee_rate="0.001",
                  taker_fee_rate="0.002", base_scale=8, quote_scale=6)
    trader = trader_create(name=f"profile-{tag}", deposits=[("USD", "100000000")])
    key_id, secret = trader.credentials.key.key_id, trader.credentials.secret
    client = Client()
    rng = random.Random(1)

    def place():
        body = json.dumps({"market": symbol, "side": "buy", "type": "limit",
                           "price": f"{90 + rng.randint(0, 500) / 100:.2f}", "quantity": "0.0200"}).encode()
        headers = signed_headers(key_id=key_id, timestamp=int(time.time() * 1000), nonce=secrets.token_urlsafe(18),
                                 method="POST", path="/api/v1/orders", body=body, secret=secret)
        response = client.post("/api/v1/orders", data=body, content_type="application/json",
                               headers=headers)
        if response.status_code == 401 and response.json()["code"] == "replay_guard_reset":
            return place()  # a fresh replay store refuses what was signed before it started: sign again
        assert response.status_code in (201, 202), response.content

    for _ in range(20):  # warm caches, connections, imports
        place()
    redis_calls = redis_counter()
    profile = cProfile.Profile(time.process_time)  # CPU, not wall: waits on PostgreSQL and Redis are not the web side's cost
    with CaptureQueriesContext(connection) as queries:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if not args.no_profile:
            profile.enable()
        for _ in range(args.orders):
            place()
        profile.disable()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(f"[load {'/'.join(f'{v:.1f}' for v in os.getloadavg())}] {connection.vendor}"
          f"{' + Redis' if os.environ.get('REDIS_URL') else ''}: {args.orders} signed placements")
    print(f"CPU per placement (this process, profiler {'off' if args.no_profile else 'on'}): "
          f"{cpu * 1000 / args.orders:.2f} ms; "
          f"wall {wall * 1000 / args.orders:.2f} ms")
    print(f"SQL statements per placement: {len(queries) / args.orders:.1f}; "
          f"Redis commands per placement: {redis_calls['n'] / args.orders:.1f}")
    if args.no_profile:
        return
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(args.top)
    print(out.getvalue())


if __name__ == "__main__":
    main()
