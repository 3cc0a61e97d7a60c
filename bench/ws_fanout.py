"""Benchmark of the WebSocket fan-out (issue 6: WebSocket API v1).

Measures, against the database and Redis configured by DATABASE_URL/REDIS_URL (or the
embedded mode without them), with ONE daphne process serving ``exchange.asgi:application``:

1. Latency from the engine's batch commit to the ``book`` update frame at the client, p50/p99,
   with N subscribers on one market (default 1,000). The engine runs in this process
   (``MarketRunner``, one order per batch, so each batch is one book update); the commit time
   is taken where the commit signal goes out (``trading.outbox.signal.announce``, run by
   ``on_commit``). ``--probes`` clients in a child process time each frame; the other
   subscribers live in further child processes that only read. Baseline in the same run: the same
   measurement with the probes as the only subscribers.
2. channels_redis ``group_send`` to a group of N channels (with REDIS_URL): time until all N
   members received one message, versus one pub/sub PUBLISH (what the relay uses).
3. Idle connections one daphne process holds (``--idle``, default 10,000): opened from
   child processes, then the server's resident memory and a ping round trip are reported.

Usage (migrates the database first; creates its own market):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bourse_d_bench REDIS_URL=redis://127.0.0.1:6379/6 \
      BOURSE_DATA_DIR=var/d-bench BOURSE_ALLOW_GENERATED_SECRETS=1 \
      .venv/bin/python bench/ws_fanout.py [--subscribers 1000] [--batches 300] [--idle 10000]
"""
import argparse
import asyncio
import json
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- child process: many connections that subscribe (or idle) and read ----------------------
async def _sink(url, count, channel, ready_path, record_path=None):
    """``count`` connections (subscribed to ``channel`` if given) that read everything; with
    ``record_path``, each update's arrival time is kept and written there on SIGTERM."""
    import signal as signals

    import websockets

    received: dict[int, list[float]] = {}
    sockets = []
    for _i in range(count):
        ws = await websockets.connect(url, open_timeout=60, ping_interval=None, max_queue=None)
        if channel:
            await ws.send(json.dumps({"op": "subscribe", "channels": [channel]}))
            if record_path:
                await ws.recv()  # subscribed
                await ws.recv()  # snapshot
        sockets.append(ws)

    async def drain(ws):
        try:
            async for text in ws:
                if record_path:
                    now = time.time()
                    frame = json.loads(text)
                    if frame.get("type") == "update":
                        received.setdefault(frame["sequence"], []).append(now)
        except Exception:
            pass

    tasks = [asyncio.ensure_future(drain(ws)) for ws in sockets]
    done = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signals.SIGTERM, done.set)
    Path(ready_path).write_text(str(len(sockets)))
    await done.wait()
    if record_path:
        Path(record_path).write_text(json.dumps(received))
    for task in tasks:
        task.cancel()


def sink_main(argv):
    raise_fd_limit()
    url, count, channel, ready = argv[0], int(argv[1]), argv[2], argv[3]
    record = argv[4] if len(argv) > 4 else None
    asyncio.run(_sink(url, count, channel if channel != "-" else "", ready, record))


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--sink":
    sink_main(sys.argv[2:])
    sys.exit(0)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from accounts import services as account_services  # noqa: E402
from trading.models import EngineState, Market  # noqa: E402
from trading.outbox import signal  # noqa: E402
from trading.runner import MarketRunner  # noqa: E402
from trading.services import market_create, order_submit  # noqa: E402

PYTHON = sys.executable


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_s(pid):
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Server:
    def __init__(self):
        self.port = free_port()
        self.process = subprocess.Popen(
            [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "exchange.asgi:application"],
            # The connection limits would refuse a benchmark's thousands of sockets from one address.
            env={**os.environ, "PYTHONUNBUFFERED": "1", "BOURSE_WS_MAX_CONNECTIONS_PER_IP": "1000000"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=raise_fd_limit,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("daphne did not start") from None
                time.sleep(0.2)

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.port}/ws/v1"

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_sinks(url, total, channel, per_process=2500, record=None):
    processes, readies = [], []
    remaining = total
    while remaining > 0:
        count = min(per_process, remaining)
        ready = Path(settings.DATA_DIR) / f"sink-{uuid.uuid4().hex[:8]}.ready"
        processes.append(subprocess.Popen([PYTHON, __file__, "--sink", url, str(count), channel or "-", str(ready),
                                           *([str(record)] if record else [])]))
        readies.append(ready)
        remaining -= count
    deadline = time.monotonic() + 600
    while not all(r.exists() for r in readies):
        if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
            raise RuntimeError("sink processes did not connect")
        time.sleep(0.2)
    for r in readies:
        r.unlink()
    return processes


def stop_sinks(processes):
    for p in processes:
        p.terminate()
    for p in processes:
        p.wait(timeout=30)


def setup():
    call_command("migrate", verbosity=0)
    tag = uuid.uuid4().hex[:6].upper()
    market, _ = market_create(symbol=f"W{tag}-USD", tick_size="0.01", lot_size="0.0001", min_notional="1",
                              maker_fee_rate="0", taker_fee_rate="0", base_scale=8, quote_scale=6)
    account = account_services.account_create(name=f"ws-bench-{tag}")
    account_services.balance_deposit(account=account, asset="USD", amount="100000000")
    account_services.balance_deposit(account=account, asset=market.base_id, amount="1000000")
    EngineState.objects.update_or_create(market=market, defaults={"owner_token": "ws-bench"})
    runner = MarketRunner(Market.objects.select_related("base", "quote").get(pk=market.pk), "ws-bench")
    runner.rebuild()
    return runner, account


def latency_run(runner, account, url, batches, probes_count, rate, server_pid=None):
    """Place one resting order per batch; return commit->frame latencies (ms) at the probes."""
    channel = f"book:{runner.market.symbol}"
    commits: dict[int, float] = {}
    original = signal.announce

    def timed_announce(ids):
        # The order submission's own commit (its balance event) announces too: keep the
        # first time a sequence was announced, which is its batch's commit.
        commits.setdefault(runner.book.sequence, time.time())
        original(ids)

    record = Path(settings.DATA_DIR) / f"probes-{uuid.uuid4().hex[:8]}.json"
    probes = start_sinks(url, probes_count, channel, record=record)  # a process of their own
    signal.announce = timed_announce
    rng = random.Random(7)
    cpu_before = cpu_s(server_pid) if server_pid else 0.0
    try:
        for _ in range(batches):
            side = rng.choice(["buy", "sell"])
            offset = Decimal(rng.randint(1, 200)) / 100
            price = Decimal(100) - offset if side == "buy" else Decimal(100) + offset
            order_submit(account=account, market=runner.market.symbol, side=side, type="limit",
                         price=price, quantity=Decimal("0.02"))
            runner.step()
            time.sleep(1 / rate)
        time.sleep(1.0)
        server_cpu_ms_per_batch = (cpu_s(server_pid) - cpu_before) * 1000 / batches if server_pid else None
    finally:
        signal.announce = original
        stop_sinks(probes)
    received = {int(seq): times for seq, times in json.loads(record.read_text()).items()}
    record.unlink()
    latencies = [(t - commits[seq]) * 1000 for seq, times in received.items() if seq in commits for t in times]
    expected = (len(commits) - 1) * probes_count  # the sequence before the first batch is no update
    return latencies, expected, server_cpu_ms_per_batch


def summary(latencies):
    return {"n": len(latencies), "p50_ms": round(percentile(latencies, 0.50), 2),
            "p99_ms": round(percentile(latencies, 0.99), 2), "max_ms": round(max(latencies), 2),
            "mean_ms": round(statistics.fmean(latencies), 2)}


async def group_send_cost(members):
    """channels_redis: time for one group_send to reach all ``members`` channels."""
    from channels_redis.core import RedisChannelLayer  # requirements-test.txt: only this comparison uses it

    layer = RedisChannelLayer(hosts=[settings.REDIS_URL])
    group = f"bench-{uuid.uuid4().hex[:8]}"
    channels = [await layer.new_channel() for _ in range(members)]
    for name in channels:
        await layer.group_add(group, name)
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        await layer.group_send(group, {"type": "book.update", "text": "x" * 200})
        sent = time.perf_counter()
        await asyncio.gather(*(layer.receive(name) for name in channels))
        timings.append(((sent - started) * 1000, (time.perf_counter() - started) * 1000))
    for name in channels:
        await layer.group_discard(group, name)
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(settings.REDIS_URL)
    started = time.perf_counter()
    for _ in range(100):
        await client.publish("bourse:bench", "1-2")
    publish_ms = (time.perf_counter() - started) * 1000 / 100
    await client.aclose()
    send_ms = statistics.median(t[0] for t in timings)
    all_ms = statistics.median(t[1] for t in timings)
    return {"members": members, "group_send_ms": round(send_ms, 2), "all_received_ms": round(all_ms, 2),
            "publish_ms": round(publish_ms, 3)}


async def _ping(url):
    import websockets

    async with websockets.connect(url, open_timeout=30) as ws:
        started = time.perf_counter()
        await ws.send(json.dumps({"op": "ping", "id": 1}))
        await ws.recv()
        return (time.perf_counter() - started) * 1000


def main():
    raise_fd_limit()
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--probes", type=int, default=10)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20, help="engine batches per second")
    parser.add_argument("--idle", type=int, default=10_000)
    args = parser.parse_args()

    mode = "postgres+redis" if settings.REDIS_URL else "embedded (sqlite, unix datagrams)"
    print(f"mode: {mode}; cpus: {os.cpu_count()}", flush=True)
    runner, account = setup()
    server = Server()
    try:
        # 1a. Baseline: the probes alone.
        base, expected, base_cpu = latency_run(runner, account, server.url, args.batches, args.probes, args.rate,
                                               server.process.pid)
        print("baseline", json.dumps({**summary(base), "expected": expected, "subscribers": args.probes,
                                      "server_cpu_ms_per_batch": round(base_cpu, 2)}), flush=True)
        # 1b. The same with N subscribers on the market.
        others = start_sinks(server.url, args.subscribers - args.probes, f"book:{runner.market.symbol}")
        try:
            loaded, expected, loaded_cpu = latency_run(runner, account, server.url, args.batches, args.probes,
                                                       args.rate, server.process.pid)
        finally:
            stop_sinks(others)
        result = summary(loaded)
        print("loaded", json.dumps({**result, "expected": expected, "subscribers": args.subscribers,
                                    "server_cpu_ms_per_batch": round(loaded_cpu, 2),
                                    "p99_ratio_to_baseline": round(result["p99_ms"] / summary(base)["p99_ms"], 2)}),
              flush=True)
        # 2. channels_redis group_send, for comparison.
        if settings.REDIS_URL:
            for members in (100, args.subscribers):
                print("channels_redis", json.dumps(asyncio.run(group_send_cost(members))), flush=True)
        # 3. Idle connections.
        before = rss_mb(server.process.pid)
        idle = start_sinks(server.url, args.idle, "")
        try:
            after = rss_mb(server.process.pid)
            ping_ms = asyncio.run(_ping(server.url))
            print("idle", json.dumps({"connections": args.idle, "rss_before_mb": round(before, 1),
                                      "rss_after_mb": round(after, 1),
                                      "kb_per_connection": round((after - before) * 1024 / args.idle, 1),
                                      "ping_ms_while_held": round(ping_ms, 2)}), flush=True)
        finally:
            stop_sinks(idle)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
