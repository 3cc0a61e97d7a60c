"""Benchmark of the FIX gateway (issue 8): NewOrderSingle -> first ExecutionReport latency
from a QuickFIX initiator on loopback, p50/p99, at a fixed rate (100 and 1,000 orders/s by
default), and whether 1,000 orders/s is sustained on one session.

What runs: an engine process and a gateway process (``run_engine``, ``run_fix_gateway``) on
the database configured by DATABASE_URL (default: the embedded SQLite under
BOURSE_DATA_DIR), and a QuickFIX SocketInitiator in this process. Orders are passive limit
buys (they rest: the first report is the engine's ``New``), sent by a pacing thread; the
clock starts just before ``sendToTarget`` and stops when QuickFIX hands the first report
for that ClOrdID to ``fromApp``, so both QuickFIX hops are included.

Baselines in the same run: TestRequest -> Heartbeat round trips over the same session (the
transport floor: two QuickFIX hops and the gateway's loop, no database), and
``order_submit`` called directly in this process (the service's own cost per order, which
bounds one session's rate when its orders are processed in sequence).

Usage (migrates the database it is given, creates its own market and trader):
    BOURSE_DATA_DIR=var/bench BOURSE_ALLOW_GENERATED_SECRETS=1 .venv/bin/python bench/fix_latency.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bourse_bench REDIS_URL=redis://127.0.0.1:6379/7 \
        BOURSE_ALLOW_GENERATED_SECRETS=1 .venv/bin/python bench/fix_latency.py [--rates 100,1000] [--seconds 10]
"""
import argparse
import os
import random
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")

import django  # noqa: E402

django.setup()

import quickfix as fix  # noqa: E402
from django.core.management import call_command  # noqa: E402

from accounts import services as account_services  # noqa: E402
from apikeys.services import apikey_create  # noqa: E402
from tests.fix.support import Processes, QuickFixApp, QuickFixClient, qf_new_order  # noqa: E402
from trading.services import market_create  # noqa: E402


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class TimingApp(QuickFixApp):
    """Records when the first report for each ClOrdID and each Heartbeat answer arrive."""

    def __init__(self, key):
        super().__init__(key)
        self.first_report: dict[str, float] = {}
        self.heartbeats: dict[str, float] = {}
        self.all_seen = threading.Event()
        self.expected = 0

    def fromApp(self, message, session_id):
        now = time.perf_counter()
        cl = message.getField(11) if message.isSetField(11) else None
        if cl is not None and cl not in self.first_report:
            self.first_report[cl] = now
            if len(self.first_report) >= self.expected:
                self.all_seen.set()

    def fromAdmin(self, message, session_id):
        now = time.perf_counter()
        if message.getHeader().getField(35) == "0" and message.isSetField(112):
            self.heartbeats[message.getField(112)] = now


def setup():
    call_command("migrate", verbosity=0)
    tag = uuid.uuid4().hex[:6].upper()
    symbol = f"F{tag}-USD"
    market, _ = market_create(symbol=symbol, tick_size="0.01", lot_size="0.0001", min_notional="1",
                              maker_fee_rate="0.001", taker_fee_rate="0.002", base_scale=8, quote_scale=6)
    account = account_services.account_create(name=f"fix-bench-{tag}")
    account_services.balance_deposit(account=account, asset="USD", amount="1000000000")
    created = apikey_create(account=account, scheme="hmac", scopes=["read", "trade"], label="fix bench")
    created.key.secret = created.secret
    return symbol, created.key


def paced(rate: float, count: int, action):
    """Call ``action(i)`` ``count`` times at ``rate`` per second (absolute schedule, so a
    slow call does not lower the rate); return the send times."""
    sent = []
    start = time.perf_counter()
    for i in range(count):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent.append(time.perf_counter())
        action(i)
    return sent, time.perf_counter() - start


def heartbeat_baseline(client: QuickFixClient, app: TimingApp, count=200, rate=100.0):
    ids = [f"hb-{i}" for i in range(count)]

    def send(i):
        request = fix.Message()
        request.getHeader().setField(fix.MsgType(fix.MsgType_TestRequest))
        request.setField(fix.TestReqID(ids[i]))
        fix.Session.sendToTarget(request, client.session_id)

    sent, _ = paced(rate, count, send)
    deadline = time.monotonic() + 10
    while len(app.heartbeats) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return [(app.heartbeats[i] - t) * 1000 for i, t in zip(ids, sent, strict=False) if i in app.heartbeats]


def run_rate(client: QuickFixClient, app: TimingApp, symbol: str, rate: int, seconds: float):
    count = int(rate * seconds)
    rng = random.Random(rate)
    prefix = f"r{rate}-"
    app.first_report.clear()
    app.all_seen.clear()
    app.expected = count
    orders = [qf_new_order(f"{prefix}{i}", fix.Side_BUY, f"{rng.randint(200, 500) / 10000:.4f}",
                           f"{rng.randint(5000, 9000) / 100:.2f}", symbol=symbol) for i in range(count)]
    sent, elapsed = paced(rate, count, lambda i: fix.Session.sendToTarget(orders[i], client.session_id))
    app.all_seen.wait(timeout=30)
    latencies = []
    missing = 0
    for i, t in enumerate(sent):
        seen = app.first_report.get(f"{prefix}{i}")
        if seen is None:
            missing += 1
        else:
            latencies.append((seen - t) * 1000)
    last_report = max(app.first_report.values()) if app.first_report else sent[-1]
    tenth = max(1, len(latencies) // 10)
    return {
        "rate": rate,
        "orders": count,
        "send_rate": count / elapsed,
        "report_rate": len(app.first_report) / (last_report - sent[0]),
        "missing": missing,
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies),
        "first_tenth_p50": statistics.median(latencies[:tenth]),
        "last_tenth_p50": statistics.median(latencies[-tenth:]),
        "drain_ms": (last_report - sent[-1]) * 1000,
    }


def service_baseline(account, symbol, count=50):
    """Milliseconds per ``order_submit`` called directly in this process (no FIX, no wait
    for the engine): the floor of one session's order path when it runs in sequence."""
    from trading.services import order_submit

    started = time.perf_counter()
    for _i in range(count):
        order_submit(account=account, market=symbol, side="buy", type="limit", price="50.00", quantity="0.0300")
    return (time.perf_counter() - started) * 1000 / count


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="100,1000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pipeline", type=int, default=1, help="the gateway's BOURSE_FIX_PIPELINE")
    args = parser.parse_args()

    symbol, key = setup()
    # The account's order budget (the ``orders`` policy, shared with REST) is lifted: the
    # point is the gateway's speed, not the rate limiter's refusals.
    processes = Processes(markets=(symbol,), BOURSE_FIX_PIPELINE=str(args.pipeline), BOURSE_RATE_LIMIT_ORDERS="10000000/10")
    app = TimingApp(key)
    client = QuickFixClient(key, processes.port, heartbeat=30, app=app)
    try:
        assert client.start(), processes.output()
        # warm-up: connections, caches, the engine's first batch
        run_rate(client, app, symbol, 50, 1)
        baseline = heartbeat_baseline(client, app)
        service_ms = service_baseline(key.account, symbol)
        print(f"database: {django.db.connection.vendor}; market {symbol}; {args.seconds:g} s per rate; pipeline {args.pipeline}")
        print(f"baseline TestRequest->Heartbeat: p50 {percentile(baseline, 0.5):.3f} ms, p99 {percentile(baseline, 0.99):.3f} ms "
              f"({len(baseline)} round trips)")
        print(f"baseline order_submit called directly: {service_ms:.2f} ms per order ({1000 / service_ms:.0f} orders/s in sequence)")
        for rate in (int(r) for r in args.rates.split(",")):
            result = run_rate(client, app, symbol, rate, args.seconds)
            print(
                f"{rate:>5}/s: {result['orders']} orders, sent {result['send_rate']:.0f}/s, first reports "
                f"{result['report_rate']:.0f}/s, missing {result['missing']}; latency p50 {result['p50']:.2f} ms, "
                f"p99 {result['p99']:.2f} ms, max {result['max']:.1f} ms (p50 first/last tenth "
                f"{result['first_tenth_p50']:.2f}/{result['last_tenth_p50']:.2f} ms; last report "
                f"{result['drain_ms']:.1f} ms after the last send); p50/baseline {result['p50'] / percentile(baseline, 0.5):.1f}x"
            )
    finally:
        client.stop()
        processes.stop()


if __name__ == "__main__":
    main()
