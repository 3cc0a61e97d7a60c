"""Benchmark of the engine process (issue: order lifecycle).

Measures, against the database configured by DATABASE_URL (PostgreSQL for the figures):

1. Throughput: N orders are submitted through ``order_submit`` while no engine runs; then
   one ``MarketRunner`` processes them with group commit and we time it (orders/s).
   Baseline in the same run: the pure in-memory engine on the same orders, so the ratio is
   the cost of persistence.
   Then ``settlement_run`` settles the trades those batches made, timed the same way
   (trades/s), as one Celery task of the worker would.
2. Latency: an engine subprocess (and, with REDIS_URL, a Celery worker settling beside it)
   runs while submitter threads place orders at a fixed rate; each caller measures from its
   submission's commit to the verdict being visible to it (p50/p99, per second too). Baseline
   in the same run: a bare ``SELECT 1`` round trip from the same caller. Settlement lag (the
   age of the market's oldest unsettled fill) is sampled every 0.5 s during the phase and
   until the backlog is gone.

``--profile DIR`` writes cProfile statistics of the throughput phase's engine batches and
of its settlement (``engine.prof``, ``settlement.prof`` and their top functions as text).
``--report DIR`` writes ``report.md`` and ``engine_process.png`` (verdict p50/p99 and
completed orders per second, settlement lag over time).

Usage (creates its own market; migrate first):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bourse_bench BOURSE_ALLOW_GENERATED_SECRETS=1 \
        .venv/bin/python bench/engine_process.py [--orders 20000] [--rate 500] [--seconds 10] \
        [--report bench/reports/engine_process] [--profile /tmp/prof]
"""
import argparse
import cProfile
import inspect
import io
import os
import pstats
import random
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, connections  # noqa: E402

import matching as engine  # noqa: E402
from accounts import services as account_services  # noqa: E402
from trading.models import EngineState, Fill, Market, Order  # noqa: E402
from trading.notify import VerdictWaiter  # noqa: E402
from trading.runner import MarketRunner, engine_new_order  # noqa: E402
from trading.services import market_create, order_submit, order_wait  # noqa: E402
from trading.settlement import settlement_run  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# order_wait(fresh=True): the order was written after the waiter listened (newer code only;
# the script also runs on older trees for a baseline)
WAIT_FRESH = {"fresh": True} if "fresh" in inspect.signature(order_wait).parameters else {}


def profiled(profile_dir, name, fn):
    """Run ``fn``; with ``profile_dir``, under cProfile, writing NAME.prof and NAME.txt."""
    if profile_dir is None:
        return fn()
    profiler = cProfile.Profile(time.process_time)  # CPU: waits on PostgreSQL are not this process's cost
    result = profiler.runcall(fn)
    profile_dir.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(profile_dir / f"{name}.prof")
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(40)
    (profile_dir / f"{name}.txt").write_text(text.getvalue())
    return result


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def setup(tag: str):
    symbol = f"B{tag}-USD"
    market, _ = market_create(symbol=symbol, tick_size="0.01", lot_size="0.0001", min_notional="1",
                              maker_fee_rate="0.001", taker_fee_rate="0.002", base_scale=8, quote_scale=6)
    traders = []
    for i in range(20):
        account = account_services.account_create(name=f"bench-{tag}-{i}")
        account_services.balance_deposit(account=account, asset="USD", amount="100000000")
        account_services.balance_deposit(account=account, asset=market.base_id, amount="1000000")
        traders.append(account)
    return Market.objects.select_related("base", "quote").get(pk=market.pk), traders


def order_params(rng, symbol):
    """Mostly passive limits near the mid, some crossing, some IOC."""
    side = rng.choice(["buy", "sell"])
    offset = rng.randint(-20, 60)
    price = Decimal(10000 + (-offset if side == "buy" else offset)) / 100
    params = {"market": symbol, "side": side, "type": "limit", "price": f"{price:.2f}",
              "quantity": f"{Decimal(rng.randint(200, 3000)) / 10000:.4f}"}
    if rng.random() < 0.05:
        params["time_in_force"] = "ioc"
    return params


def throughput(market, traders, count, profile_dir=None, batch=None):
    rng = random.Random(1)
    started = time.perf_counter()
    for _ in range(count):
        order_submit(account=rng.choice(traders), **order_params(rng, market.symbol))
    submit_rate = count / (time.perf_counter() - started)
    orders = list(Order.objects.filter(market=market, status="pending").order_by("id"))

    book = engine.OrderBook()
    commands = [engine_new_order(o, market) for o in orders]
    started = time.perf_counter()
    for command in commands:
        book.process(command)
    pure = len(commands) / (time.perf_counter() - started)

    EngineState.objects.update_or_create(market=market, defaults={"owner_token": "bench"})
    runner = MarketRunner(market, "bench")
    runner.rebuild()
    def run_engine():
        while runner.step(batch):
            pass

    started, cpu = time.perf_counter(), time.process_time()
    profiled(profile_dir, "engine", run_engine)
    elapsed, engine_cpu = time.perf_counter() - started, time.process_time() - cpu
    trades = Fill.objects.filter(market=market, settled=False).count() // 2
    started, cpu = time.perf_counter(), time.process_time()
    profiled(profile_dir, "settlement", lambda: settlement_run(market.pk))
    settle_elapsed, settle_cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"orders": len(orders), "submit_per_s": submit_rate, "engine_per_s": len(orders) / elapsed,
            "engine_cpu_ms": engine_cpu * 1000 / max(1, len(orders)), "settle_cpu_ms": settle_cpu * 1000 / max(1, trades),
            "pure_engine_per_s": pure, "trades": trades, "settle_per_s": trades / settle_elapsed}


def placements(market, accounts, seconds, threads=4):
    """Closed loop: ``threads`` threads place orders through ``order_submit`` (no verdict
    wait, no engine) for ``seconds``, thread i on ``accounts[i % len(accounts)]``; orders/s.
    With one account every placement locks the same balance row (for one statement)."""
    counts = [0] * threads
    deadline = time.perf_counter() + seconds

    def run(index):
        rng = random.Random(500 + index)
        account = accounts[index % len(accounts)]
        while time.perf_counter() < deadline:
            params = order_params(rng, market.symbol)
            params["side"], params["price"] = "buy", "90.00"  # passive: the engine is not running
            order_submit(account=account, **params)
            counts[index] += 1
        connections.close_all()

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / seconds


class LagSampler(threading.Thread):
    """Every 0.5 s: the age of the market's oldest unsettled fill (settlement lag)."""

    def __init__(self, market):
        super().__init__(daemon=True)
        self.market, self.samples, self.stopping = market, [], threading.Event()
        self.started = time.perf_counter()

    def run(self):
        from django.utils import timezone

        try:
            while not self.stopping.wait(0.5):
                oldest = (Fill.objects.filter(market=self.market, settled=False)
                          .order_by("id").values_list("created_at", flat=True).first())
                lag = (timezone.now() - oldest).total_seconds() if oldest else 0.0
                self.samples.append((time.perf_counter() - self.started, lag))
        finally:
            connection.close()


def cpu_seconds(pid):
    """User + system CPU of a process (all its threads) so far, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def latency(market, traders, rate, seconds, threads=4):
    env = dict(os.environ)
    engine_process = subprocess.Popen([sys.executable, "manage.py", "run_engine", "--markets", market.symbol],
                                      cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    celery = None
    if os.environ.get("REDIS_URL"):
        # Tasks queued with no worker (the throughput phase's, an earlier run's) would be this
        # worker's first work and count in its lag and CPU: drop them.
        from exchange.celery import app as celery_app

        celery_app.control.purge()
        celery = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "exchange", "worker", "--pool=solo", "--loglevel=WARNING",
             "--without-gossip", "--without-mingle"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
    time.sleep(3.0)  # let the engine own the market, the worker connect
    verdicts, round_trips, pending = [], [], [0]
    timeline = []  # (seconds into the phase, commit -> verdict seconds)
    lag = LagSampler(market)
    lag.start()
    lock = threading.Lock()
    waiter = VerdictWaiter.get()
    cpu_before = {name: cpu_seconds(p.pid) for name, p in (("engine", engine_process), ("worker", celery)) if p}

    def submitter(index):
        rng = random.Random(100 + index)
        interval = threads / rate
        next_at = time.perf_counter()
        deadline = next_at + seconds
        local_v, local_rt, local_t = [], [], []
        while next_at < deadline:
            time.sleep(max(0.0, next_at - time.perf_counter()))
            next_at += interval
            result = order_submit(account=rng.choice(traders), **order_params(rng, market.symbol))
            committed = time.perf_counter()
            order = order_wait(result.order, 2.0, waiter, **WAIT_FRESH)
            done = time.perf_counter()
            if order.status == "pending":
                with lock:
                    pending[0] += 1
                continue
            local_v.append(done - committed)
            local_t.append((committed - lag.started, done - committed))
            started = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            local_rt.append(time.perf_counter() - started)
        with lock:
            verdicts.extend(local_v)
            round_trips.extend(local_rt)
            timeline.extend(local_t)
        connections.close_all()

    workers = [threading.Thread(target=submitter, args=(i,)) for i in range(threads)]
    phase_started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - phase_started  # longer than `seconds` when the submitters fall behind
    load = os.getloadavg()[0]
    phase_lag = max((value for _, value in lag.samples), default=0.0)
    drained_at = time.perf_counter()
    if celery is not None:  # the backlog left at the end of the phase: how long until settled
        while time.perf_counter() - drained_at < 60 and (not lag.samples or lag.samples[-1][1] > 0):
            time.sleep(0.5)
    drain_s = time.perf_counter() - drained_at
    # CPU per order of the engine process and the settlement worker over the phase and the
    # drain (idle polling included: it is part of what each role costs).
    cpu_ms = {name: (cpu_seconds(p.pid) - cpu_before[name]) * 1000 / max(1, len(verdicts))
              for name, p in (("engine", engine_process), ("worker", celery))
              if p and cpu_before.get(name) is not None}
    lag.stopping.set()
    lag.join()
    for process in (engine_process, celery):
        if process is not None:
            process.terminate()
            process.wait(10)
    return {"orders": len(verdicts), "timeouts": pending[0], "achieved_rate": len(verdicts) / elapsed,
            "p50_ms": percentile(verdicts, 0.50) * 1000, "p99_ms": percentile(verdicts, 0.99) * 1000,
            "select1_p50_ms": percentile(round_trips, 0.50) * 1000, "timeline": sorted(timeline),
            "lag": lag.samples, "phase_lag_max_s": phase_lag, "drain_s": drain_s if celery else None,
            "settling": celery is not None, "load": load,
            "cpu_ms": cpu_ms}


def plot(report_dir, lat, rate):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_second = {}
    for at, value in lat["timeline"]:
        per_second.setdefault(int(at), []).append(value)
    seconds = sorted(per_second)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.4), constrained_layout=True)
    top.bar(seconds, [len(per_second[s]) for s in seconds], color="#9bb7d4", label="verdicts / s")
    top.set_ylabel("orders / s")
    top.set_title(f"engine process at {rate} orders/s: commit -> verdict")
    twin = top.twinx()
    twin.plot(seconds, [percentile(per_second[s], 0.5) * 1000 for s in seconds], color="#1f5f99", label="p50")
    twin.plot(seconds, [percentile(per_second[s], 0.99) * 1000 for s in seconds], color="#c0392b", label="p99")
    twin.axhline(20, color="#c0392b", linestyle=":", linewidth=1)
    twin.set_ylabel("latency (ms)")
    twin.legend(loc="upper right")
    bottom.plot([s for s, _ in lat["lag"]], [v for _, v in lat["lag"]], color="#6c3483")
    bottom.set_title("settlement lag (age of the oldest unsettled fill; Celery worker beside the engine)")
    bottom.set_xlabel("seconds into the phase")
    bottom.set_ylabel("seconds")
    report_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(report_dir / "engine_process.png", dpi=90)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=20000)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--report", type=Path, default=None)
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--batch", type=int, default=None,
                        help="engine batch size of the throughput phase (default BOURSE_ENGINE_BATCH)")
    args = parser.parse_args()
    from benchdb import prepare  # bench/ (the script's folder) is on the path

    print(prepare(), flush=True)
    tag = "".join(random.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(5))
    market, traders = setup(tag)
    print(f"database: {connection.vendor}; market {market.symbol}")
    t = throughput(market, traders, args.orders, args.profile, args.batch)
    lines = []
    print(f"throughput: {t['orders']} pending orders processed at {t['engine_per_s']:,.0f} orders/s "
          f"(group commit, batch {args.batch or django.conf.settings.BOURSE_ENGINE_BATCH}; "
          f"CPU {t['engine_cpu_ms']:.2f} ms/order in this process); pure in-memory engine on the same "
          f"orders {t['pure_engine_per_s']:,.0f}/s; ratio {t['engine_per_s'] / t['pure_engine_per_s']:.3f}; "
          f"order_submit from one thread {t['submit_per_s']:,.0f}/s")
    print(f"settlement: {t['trades']} trades settled at {t['settle_per_s']:,.0f} trades/s by settlement_run "
          f"(CPU {t['settle_cpu_ms']:.2f} ms/trade in this process; engine made them at "
          f"{t['trades'] / t['orders'] * t['engine_per_s']:,.0f} trades/s)")
    market2, traders2 = setup(tag + "L")
    lat = latency(market2, traders2, args.rate, args.seconds)
    print(f"latency at {args.rate}/s target ({lat['achieved_rate']:,.0f}/s achieved, {lat['orders']} orders, "
          f"{lat['timeouts']} timeouts): commit->verdict p50 {lat['p50_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms; "
          f"SELECT 1 round trip p50 {lat['select1_p50_ms']:.2f} ms (p50 ratio "
          f"{lat['p50_ms'] / lat['select1_p50_ms']:.1f}x)")
    one = placements(market2, traders2[:1], 5)
    spread = placements(market2, traders2[:4], 5)
    print(f"one account alone: {one:,.0f} placements/s from 4 threads (order_submit, no wait); "
          f"baseline, 4 accounts: {spread:,.0f}/s (ratio {one / spread:.2f})")
    if lat["settling"]:
        print(f"settlement lag during the phase (worker beside the engine): max {lat['phase_lag_max_s']:.2f} s; "
              f"backlog settled {lat['drain_s']:.1f} s after the phase")
    if lat["cpu_ms"]:
        print("CPU per order during the latency phase: "
              + ", ".join(f"{name} {value:.2f} ms" for name, value in lat["cpu_ms"].items()))
    print(f"load average (1 min) at the end of the latency phase: {lat['load']:.2f}")
    if args.report:
        plot(args.report, lat, args.rate)
        lines = [
            "# Engine process benchmark", "",
            f"`{' '.join(sys.argv)}` — database {connection.vendor}, load average {lat['load']:.2f}", "",
            "| figure | value | baseline (same run) |", "|---|---|---|",
            f"| engine throughput (batch {django.conf.settings.BOURSE_ENGINE_BATCH}) | {t['engine_per_s']:,.0f} orders/s "
            f"| pure in-memory engine {t['pure_engine_per_s']:,.0f}/s |",
            f"| settlement (`settlement_run`) | {t['settle_per_s']:,.0f} trades/s | engine made "
            f"{t['trades'] / t['orders'] * t['engine_per_s']:,.0f} trades/s |",
            f"| commit -> verdict at {args.rate}/s ({lat['achieved_rate']:,.0f}/s achieved) | p50 {lat['p50_ms']:.2f} ms, "
            f"p99 {lat['p99_ms']:.2f} ms | `SELECT 1` p50 {lat['select1_p50_ms']:.2f} ms |",
        ]
        lines.append(f"| one account alone, 4 threads of `order_submit` | {one:,.0f} placements/s | "
                     f"4 accounts {spread:,.0f}/s |")
        if lat["settling"]:
            lines.append(f"| settlement lag at {args.rate}/s | max {lat['phase_lag_max_s']:.2f} s; backlog settled "
                         f"{lat['drain_s']:.1f} s after | — |")
        for name, value in lat["cpu_ms"].items():
            lines.append(f"| CPU per order, {name} process (latency phase) | {value:.2f} ms | — |")
        lines += ["", "![engine process](engine_process.png)", ""]
        (args.report / "report.md").write_text("\n".join(lines))
    VerdictWaiter.shutdown()


if __name__ == "__main__":
    main()
