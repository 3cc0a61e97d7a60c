"""Benchmark of the engine process (issue: order lifecycle).

Measures, against the database configured by DATABASE_URL (PostgreSQL for the figures):

1. Throughput: N orders are submitted through ``order_submit`` while no engine runs; then
   one ``MarketRunner`` processes them with group commit and we time it (orders/s).
   Baseline in the same run: the pure in-memory engine on the same orders, so the ratio is
   the cost of persistence.
2. Latency: an engine subprocess runs while submitter threads place orders at a fixed rate;
   each caller measures from its submission's commit to the verdict being visible to it
   (p50/p99). Baseline in the same run: a bare ``SELECT 1`` round trip from the same caller.

Usage (creates its own market; migrate first):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bourse_bench BOURSE_ALLOW_GENERATED_SECRETS=1 \
        .venv/bin/python bench/engine_process.py [--orders 20000] [--rate 500] [--seconds 10]
"""
import argparse
import os
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

from django.core.management import call_command  # noqa: E402
from django.db import connection, connections  # noqa: E402

import matching as engine  # noqa: E402
from accounts import services as account_services  # noqa: E402
from trading.models import EngineState, Market, Order  # noqa: E402
from trading.notify import VerdictWaiter  # noqa: E402
from trading.runner import MarketRunner, engine_new_order  # noqa: E402
from trading.services import market_create, order_submit, order_wait  # noqa: E402


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


def throughput(market, traders, count):
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
    started = time.perf_counter()
    while runner.step():
        pass
    elapsed = time.perf_counter() - started
    return {"orders": len(orders), "submit_per_s": submit_rate, "engine_per_s": len(orders) / elapsed,
            "pure_engine_per_s": pure}


def latency(market, traders, rate, seconds, threads=4):
    env = dict(os.environ)
    engine_process = subprocess.Popen([sys.executable, "manage.py", "run_engine", "--markets", market.symbol],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2.0)  # let it own the market
    verdicts, round_trips, pending = [], [], [0]
    lock = threading.Lock()
    waiter = VerdictWaiter.get()

    def submitter(index):
        rng = random.Random(100 + index)
        interval = threads / rate
        next_at = time.perf_counter()
        deadline = next_at + seconds
        local_v, local_rt = [], []
        while next_at < deadline:
            time.sleep(max(0.0, next_at - time.perf_counter()))
            next_at += interval
            result = order_submit(account=rng.choice(traders), **order_params(rng, market.symbol))
            committed = time.perf_counter()
            order = order_wait(result.order, 2.0, waiter)
            done = time.perf_counter()
            if order.status == "pending":
                with lock:
                    pending[0] += 1
                continue
            local_v.append(done - committed)
            started = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            local_rt.append(time.perf_counter() - started)
        with lock:
            verdicts.extend(local_v)
            round_trips.extend(local_rt)
        connections.close_all()

    workers = [threading.Thread(target=submitter, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    engine_process.terminate()
    engine_process.wait(10)
    return {"orders": len(verdicts), "timeouts": pending[0], "achieved_rate": len(verdicts) / seconds,
            "p50_ms": percentile(verdicts, 0.50) * 1000, "p99_ms": percentile(verdicts, 0.99) * 1000,
            "select1_p50_ms": percentile(round_trips, 0.50) * 1000}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=20000)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    tag = "".join(random.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(5))
    market, traders = setup(tag)
    print(f"database: {connection.vendor}; market {market.symbol}")
    t = throughput(market, traders, args.orders)
    print(f"throughput: {t['orders']} pending orders processed at {t['engine_per_s']:,.0f} orders/s "
          f"(group commit, batch {django.conf.settings.BOURSE_ENGINE_BATCH}); pure in-memory engine on the same "
          f"orders {t['pure_engine_per_s']:,.0f}/s; ratio {t['engine_per_s'] / t['pure_engine_per_s']:.3f}; "
          f"order_submit from one thread {t['submit_per_s']:,.0f}/s")
    market2, traders2 = setup(tag + "L")
    lat = latency(market2, traders2, args.rate, args.seconds)
    print(f"latency at {args.rate}/s target ({lat['achieved_rate']:,.0f}/s achieved, {lat['orders']} orders, "
          f"{lat['timeouts']} timeouts): commit->verdict p50 {lat['p50_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms; "
          f"SELECT 1 round trip p50 {lat['select1_p50_ms']:.2f} ms (p50 ratio "
          f"{lat['p50_ms'] / lat['select1_p50_ms']:.1f}x)")
    VerdictWaiter.shutdown()


if __name__ == "__main__":
    main()
