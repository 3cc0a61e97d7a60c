"""Order-path load benchmark: signed order placements per second over REST against the
production roles (REST served as documented, ``manage.py serve_http``: uvicorn processes; an
engine process; a Celery worker settling), with the
signed no-op `GET /api/v1/account` measured in the same run as the baseline.

    createdb -h 127.0.0.1 -U postgres bourse_bench   # once
    make bench   # or, with the same environment as the Makefile sets:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bourse_bench REDIS_URL=redis://127.0.0.1:6379/5 \\
    BOURSE_ALLOW_GENERATED_SECRETS=1 BOURSE_DATA_DIR=/tmp/benchdata LOG_LEVEL=WARNING \\
    .venv/bin/python bench/rest_load.py --seconds 10 --sustain 30 --rate 500 --report bench/reports/order_path

Phases, each after a warm-up that touches every server thread (cold workers would sign
nothing wrong, but their first requests are slow and the run must not measure imports):
0. (``--compare``) serving setups side by side, each started on its own: server processes x
   request threads (``BOURSE_HTTP_THREADS``; 0 = Django's stock ASGI handler), signed GET and
   POST closed loops each — the measurements the documented setup was chosen from;
1. closed loop, `--connections` clients: GET /account (the baseline), then POST /orders
   (crossing limit orders, so the engine matches and settlement runs); their ratio;
2. sustained closed loop of POST /orders for `--sustain` seconds: throughput and latency per
   second, settlement lag sampled every second, and at the end every accepted order must
   have its verdict (none left `pending`) — what "keeps up" means;
3. open loop at `--rate` orders/s: p50/p99 of POST /orders as a client sees it (queueing
   included; commit -> verdict is bench/engine_process.py's);
4. one account alone: the closed-loop rate of one trader's orders.

CPU per placement: the CPU time the server processes (web, engine, worker) and every
PostgreSQL backend used during phase 2, divided by the orders placed. The load average is
printed with every figure; the machine is shared, so compare ratios from the same run.
With `--report DIR` it writes `report.md` and PNG plots (throughput and latency percentiles
per second, settlement lag) there.

``--server daphne`` serves the same application with daphne processes sharing the port
instead of ``serve_http``'s uvicorn processes: the baseline the web role's server was chosen
against (bench/order_path.md, "The web role on uvicorn").

Status 0 in the printed counts: the server closed the connection before answering (a starved
server cuts connections whose request it has not read within BOURSE_HTTP_REQUEST_TIMEOUT_S).

Rate limits and the authentication-failure budget are lifted for the run (environment of
the server processes) so they do not cap it.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from apikeys.services import trader_create  # noqa: E402
from apikeys.signing import signed_headers  # noqa: E402
from trading.models import Fill, Order  # noqa: E402
from trading.services import market_create  # noqa: E402

SERVER_ENV = {
    "BOURSE_RATE_LIMIT_KEY": "100000000/60",
    "BOURSE_RATE_LIMIT_ORDERS": "100000000/10",
    "BOURSE_RATE_LIMIT_IP": "100000000/60",
    "BOURSE_RATE_LIMIT_AUTH_FAILURES": "100000000/60",
    "LOG_LEVEL": "WARNING",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def loadavg() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


# --- CPU accounting from /proc -------------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo += _children(current)
    return pids


def _exited_backends_cpu() -> float:
    """CPU seconds of the PostgreSQL server's exited children (its backends that ended: the
    postmaster's cutime + cstime). Those of every database: run nothing else on the server
    while measuring."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    try:
        postmaster = int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
        fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # not on this machine
    return (int(fields[13]) + int(fields[14])) / TICKS


def _postgres_pids() -> list[int]:
    """The PostgreSQL backends connected to this benchmark's database (other databases on the
    same server — other people's test runs — are not counted; nor are the server's shared
    background processes: the WAL writer, the checkpointer, autovacuum launcher)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return [row[0] for row in cursor.fetchall()]


def _address_port(text: str) -> int:
    return int(text.rsplit(":", 1)[1])


def _socket_owner(users: str) -> int | None:
    """The pid in ss's ``users:(("name",pid=N,fd=M))`` column."""
    start = users.find("pid=")
    if start < 0:
        return None
    return int(users[start + 4:].split(",", 1)[0].rstrip(")"))


def backend_clients(server_port: int = 5432) -> dict[int, int]:
    """PostgreSQL backend pid -> the pid of the process at the other end of its TCP connection,
    from one ``ss -tnp`` listing of this machine's sockets (the server's side of a connection
    and the client's side share the client's port). Empty where ss is missing."""
    try:
        listing = subprocess.run(["ss", "-tnpH"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    backend_of_port, client_of_port = {}, {}
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) < 6:
            continue
        local, peer, owner = _address_port(fields[3]), _address_port(fields[4]), _socket_owner(fields[5])
        if owner is None:
            continue
        if local == server_port:
            backend_of_port[peer] = owner
        elif peer == server_port:
            client_of_port[local] = owner
    return {backend: client_of_port[port] for port, backend in backend_of_port.items() if port in client_of_port}


class CpuMeter:
    """CPU seconds used by the server roles, by PostgreSQL (the backends connected to this
    benchmark's database, and every backend that ended in between — a role that reconnects
    per unit of work, as Celery's worker once did per task, is counted too) and by this load
    generator (the client) between start() and stop().

    ``by_role`` splits PostgreSQL's share by the role whose process holds each backend's
    connection (``backend_clients``): what each role's statements cost the server. Backends
    that ended in between are ``ended``; those of no role (this process's own, another
    program's) ``other``."""

    def __init__(self, roles: dict[str, subprocess.Popen]):
        self.roles = roles
        self.by_role: dict[str, float] = {}

    def role_of_backends(self) -> dict[int, str]:
        owner = {}
        for name, proc in self.roles.items():
            for pid in getattr(proc, "pids", [proc.pid]):
                for member in _tree(pid):
                    owner[member] = name
        return {backend: owner.get(client, "other") for backend, client in backend_clients().items()}

    def sample(self) -> tuple[dict[str, float], dict[int, float]]:
        out = {name: sum(_cpu_of(p) for pid in getattr(proc, "pids", [proc.pid]) for p in _tree(pid))
               for name, proc in self.roles.items()}
        times = os.times()
        out["client"] = times.user + times.system
        backends: dict[int, float] = {}
        if connection.vendor == "postgresql":
            backends = {p: _cpu_of(p) for p in _postgres_pids()}
            backends[0] = _exited_backends_cpu()  # key 0: the ended backends, together
        return out, backends

    def start(self):
        self.before = self.sample()
        self.roles_before = self.role_of_backends()

    def stop(self) -> dict[str, float]:
        (after, backends), (before, backends_before) = self.sample(), self.before
        roles = {**self.roles_before, **self.role_of_backends()}
        used = {name: after[name] - before.get(name, 0.0) for name in after if name != "client"}
        self.by_role = {}
        for pid, cpu in backends.items():
            role = "ended" if pid == 0 else roles.get(pid, "other")
            self.by_role[role] = self.by_role.get(role, 0.0) + cpu - backends_before.get(pid, 0.0)
        # A backend live at start that ended since is in the ended ones' total whole: less
        # what it had used before the start.
        gone = sum(cpu for pid, cpu in backends_before.items() if pid and pid not in backends)
        if gone:
            self.by_role["ended"] = self.by_role.get("ended", 0.0) - gone
        used["postgresql"] = sum(self.by_role.values())
        used["client"] = after["client"] - before["client"]
        return used

    def by_role_line(self, count: int, what: str) -> str:
        per = sorted(((seconds * 1000 / max(count, 1), name) for name, seconds in self.by_role.items()), reverse=True)
        return f"PostgreSQL CPU per {what} by the role connected: " + ", ".join(f"{name} {value:.2f} ms" for value, name in per)


def cpu_line(cpu: dict[str, float], count: int, what: str) -> str:
    per = {name: seconds * 1000 / max(count, 1) for name, seconds in cpu.items()}
    server = sum(value for name, value in per.items() if name != "client")
    return (f"CPU per {what}: " + ", ".join(f"{name} {value:.2f} ms" for name, value in per.items())
            + f"; server side total {server:.2f} ms")


# --- the client ----------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, port, credentials):
        self.port, self.key_id, self.secret = port, credentials["key_id"], credentials["secret"]

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def request(self, method, path, body=b""):
        headers = signed_headers(key_id=self.key_id, timestamp=int(time.time() * 1000),
                                 nonce=secrets.token_urlsafe(18), method=method, path=path, body=body,
                                 secret=self.secret, window=30000)  # queueing in an overloaded server is measured, not refused
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", "Content-Type: application/json",
                 f"Content-Length: {len(body)}"] + [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        status_line = await self.reader.readline()
        if not status_line:  # the server closed the connection (a starved server's idle cut-off)
            self.writer.close()
            await self.open()
            return 0, b""
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


class Series:
    """Each request's completion time, latency and status, for rates and percentiles."""

    def __init__(self, name):
        self.name, self.samples, self.started = name, [], time.perf_counter()

    def add(self, latency, status):
        self.samples.append((time.perf_counter() - self.started, latency, status))

    @property
    def latencies(self):
        return [lat for _, lat, _ in self.samples]

    @property
    def statuses(self):
        counts = {}
        for _, _, status in self.samples:
            counts[status] = counts.get(status, 0) + 1
        return counts

    def per_second(self):
        buckets = {}
        for at, lat, _ in self.samples:
            buckets.setdefault(int(at), []).append(lat)
        return [(second, len(lats), percentile(lats, .5), percentile(lats, .99)) for second, lats in sorted(buckets.items())]


async def closed_loop(port, traders, connections, seconds, make_request, name):
    series = Series(name)
    deadline = time.perf_counter() + seconds

    async def worker(index):
        conn = Connection(port, traders[index % len(traders)])
        await conn.open()
        rng = random.Random(index)
        while time.perf_counter() < deadline:
            method, path, body = make_request(rng)
            started = time.perf_counter()
            status, _ = await conn.request(method, path, body)
            series.add(time.perf_counter() - started, status)
        conn.writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    return len(series.samples) / (time.perf_counter() - started), series


async def open_loop(port, traders, rate, seconds, make_request, name, connections=64):
    """Requests start on a fixed schedule; each waits for a free connection (queueing time
    counts: that is what a client sees)."""
    pool = asyncio.Queue()
    for i in range(connections):
        conn = Connection(port, traders[i % len(traders)])
        await conn.open()
        pool.put_nowait(conn)
    series, tasks = Series(name), []
    rng = random.Random(7)

    async def one(scheduled):
        conn = await pool.get()
        method, path, body = make_request(rng)
        status, _ = await conn.request(method, path, body)
        series.add(time.perf_counter() - scheduled, status)
        pool.put_nowait(conn)

    start = time.perf_counter()
    for n in range(int(rate * seconds)):
        scheduled = start + n / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    return series


class LagSampler(threading.Thread):
    """Every second: the age of the oldest unsettled fill of the market (settlement lag)."""

    def __init__(self, market_symbol):
        super().__init__(daemon=True)
        self.symbol, self.samples, self.stopping = market_symbol, [], threading.Event()
        self.started = time.perf_counter()

    def run(self):
        from django.utils import timezone

        try:
            while not self.stopping.wait(1.0):
                oldest = (Fill.objects.filter(market__symbol=self.symbol, settled=False)
                          .order_by("id").values_list("created_at", flat=True).first())
                lag = (timezone.now() - oldest).total_seconds() if oldest else 0.0
                self.samples.append((time.perf_counter() - self.started, lag))
        finally:
            connection.close()


def start_server(args, env, processes=None, threads=None):
    """The documented REST server, ``manage.py serve_http`` (uvicorn processes on one port,
    exchange/webserver.py) — or, ``--server daphne``, the same application under daphne
    processes sharing one port the same way (the ``ws`` role's server, and the ``web`` role's
    before uvicorn): the same-run baseline the choice of server was measured against."""
    port = free_port()
    env = {**env, "BOURSE_HTTP_THREADS": str(args.threads if threads is None else threads)}
    count = args.processes if processes is None else processes
    if getattr(args, "server", "serve_http") == "daphne":
        from exchange.management.commands.serve_http import reuseport_socket

        sockets = [reuseport_socket("127.0.0.1", port) for _ in range(count)]
        children = [subprocess.Popen([sys.executable, "-m", "daphne", "--fd", str(sock.fileno()), "exchange.asgi:application"],
                                     cwd=ROOT, env=env, pass_fds=(sock.fileno(),), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL) for sock in sockets]
        for sock in sockets:
            sock.close()  # the children hold them
        server = ProcessGroup(children)
    else:
        server = subprocess.Popen([sys.executable, "manage.py", "serve_http", "--port", str(port), "--processes", str(count)],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    time.sleep(1.0)  # every process listening, not just the first
    return port, server


class ProcessGroup:
    """Several server processes stopped and measured as one (``--server daphne``)."""

    def __init__(self, children):
        self.children = children

    @property
    def pids(self):
        return [child.pid for child in self.children]

    def terminate(self):
        for child in self.children:
            child.terminate()

    def wait(self, timeout=None):
        for child in self.children:
            child.wait(timeout)

    def kill(self):
        for child in self.children:
            child.kill()


def stop(process):
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


def start_roles(symbol, args, env):
    port, server = start_server(args, env)
    roles = {
        "web": server,
        "engine": subprocess.Popen([sys.executable, "manage.py", "run_engine", "--markets", symbol], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    }
    if os.environ.get("REDIS_URL"):
        roles["worker"] = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "exchange", "worker", "--pool=solo", "--loglevel=WARNING",
             "--without-gossip", "--without-mingle"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
    return port, roles


def plot(report_dir: Path, phases, lag_samples):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(phases) + 1, 1, figsize=(10, 3.2 * (len(phases) + 1)), constrained_layout=True)
    for ax, series in zip(axes, phases, strict=False):
        rows = series.per_second()
        seconds = [r[0] for r in rows]
        ax.bar(seconds, [r[1] for r in rows], color="#9bb7d4", label="completed / s")
        ax.set_ylabel("requests / s")
        ax.set_title(series.name)
        twin = ax.twinx()
        twin.plot(seconds, [r[2] * 1000 for r in rows], color="#1f5f99", label="p50")
        twin.plot(seconds, [r[3] * 1000 for r in rows], color="#c0392b", label="p99")
        twin.set_ylabel("latency (ms)")
        twin.legend(loc="upper right")
    ax = axes[-1]
    ax.plot([s for s, _ in lag_samples], [lag for _, lag in lag_samples], color="#6c3483")
    ax.set_title("settlement lag during the sustained phase (oldest unsettled fill)")
    ax.set_xlabel("seconds into the phase")
    ax.set_ylabel("seconds")
    fig.savefig(report_dir / "order_path.png", dpi=90)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2, help="server processes (serve_http --processes)")
    parser.add_argument("--threads", type=int, default=16, help="request threads per process (BOURSE_HTTP_THREADS)")
    parser.add_argument("--server", choices=("serve_http", "daphne"), default="serve_http",
                        help="serve_http: the documented REST server (uvicorn); daphne: daphne processes on the "
                             "same port, the baseline it was chosen against")
    parser.add_argument("--compare", default="1x0,1x16,2x16",
                        help="serving setups to compare first, PROCESSESxTHREADS (0 threads: Django's stock "
                             "ASGI handler); empty to skip")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--sustain", type=int, default=30)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--report", type=Path, default=None)
    args = parser.parse_args()

    from benchdb import prepare  # bench/ (the script's folder) is on the path

    database = prepare()
    tag = "".join(random.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(5))
    symbol = f"R{tag}-USD"
    market_create(symbol=symbol, tick_size="0.01", lot_size="0.0001", min_notional="1", maker_fee_rate="0.001",
                  taker_fee_rate="0.002", base_scale=8, quote_scale=6)
    traders = []
    for i in range(16):
        created = trader_create(name=f"rest-{tag}-{i}", deposits=[("USD", "100000000"), (f"R{tag}", "1000000")])
        traders.append({"key_id": created.credentials.key.key_id, "secret": created.credentials.secret})

    env = {**os.environ, **SERVER_ENV}
    port, roles = start_roles(symbol, args, env)
    lines = []

    def say(text):
        print(text, flush=True)
        lines.append(text)

    say(database)

    def account(rng):
        return "GET", "/api/v1/account", b""

    def order(rng):
        return "POST", "/api/v1/orders", order_body(rng, symbol)

    ms = lambda v: f"{v * 1000:.1f} ms"  # noqa: E731
    def warm_up(at_port, processes, threads):
        # Every process and thread imports, connects and serves a few requests of each kind.
        warm = max(processes * max(threads, 1), args.connections)
        asyncio.run(closed_loop(at_port, traders, warm, args.warmup, account, "warm-up"))
        asyncio.run(closed_loop(at_port, traders, warm, args.warmup, order, "warm-up"))

    try:
        time.sleep(2)  # the engine owns the market
        compared = []
        for setup in filter(None, args.compare.split(",")):
            processes, threads = (int(part) for part in setup.split("x"))
            other_port, other = start_server(args, env, processes, threads)
            try:
                warm_up(other_port, processes, threads)
                seconds = max(3, args.seconds // 2)
                get_rate, gets = asyncio.run(closed_loop(other_port, traders, args.connections, seconds, account, "cmp"))
                post_rate, posts = asyncio.run(closed_loop(other_port, traders, args.connections, seconds, order, "cmp"))
            finally:
                stop(other)
            label = f"{processes} {args.server} x {'stock handler' if threads == 0 else f'{threads} threads'}"
            compared.append((label, get_rate, post_rate))
            say(f"[load {loadavg()}] serving {label}: GET /account {get_rate:,.0f} req/s "
                f"(p99 {ms(percentile(gets.latencies, .99))}), POST /orders {post_rate:,.0f} orders/s "
                f"(p99 {ms(percentile(posts.latencies, .99))}), ratio {post_rate / get_rate:.2f}")
        if compared:
            base = compared[0]
            say("serving setups against the first (" + base[0] + "): " + ", ".join(
                f"{label} x{post / base[2]:.2f} orders/s" for label, _, post in compared[1:]))

        warm_up(port, args.processes, args.threads)
        serving = ("manage.py serve_http, uvicorn" if args.server == "serve_http" else "daphne (baseline)") + \
            f", {args.processes} processes x {args.threads} threads"
        say(f"server: {serving}, engine process"
            f"{', Celery worker' if 'worker' in roles else ''}; {connection.vendor}"
            f"{' + Redis' if os.environ.get('REDIS_URL') else ''}; client: {args.connections} keep-alive connections")
        meter = CpuMeter(roles)
        meter.start()
        noop_rate, noop = asyncio.run(closed_loop(port, traders, args.connections, args.seconds, account,
                                                  "GET /account, closed loop"))
        noop_cpu = meter.stop()
        say(f"[load {loadavg()}] GET /api/v1/account (signed no-op): {noop_rate:,.0f} req/s, "
            f"p50 {ms(percentile(noop.latencies, .5))}, p99 {ms(percentile(noop.latencies, .99))}, {noop.statuses}")
        say(cpu_line(noop_cpu, len(noop.latencies), "signed GET"))
        order_rate, orders = asyncio.run(closed_loop(port, traders, args.connections, args.seconds, order,
                                                     "POST /orders, closed loop"))
        say(f"[load {loadavg()}] POST /api/v1/orders (signed, engine verdict): {order_rate:,.0f} orders/s, "
            f"p50 {ms(percentile(orders.latencies, .5))}, p99 {ms(percentile(orders.latencies, .99))}, {orders.statuses}")
        say(f"ratio placements / signed no-op: {order_rate / noop_rate:.2f} (target >= 0.6; "
            f"baseline: the signed GET above, {noop_rate:,.0f} req/s)")

        phases = [noop, orders]
        lag = LagSampler(symbol)
        if args.sustain:
            meter = CpuMeter(roles)
            lag.start()
            meter.start()
            sustain_rate, sustained = asyncio.run(closed_loop(port, traders, args.connections, args.sustain, order,
                                                              f"POST /orders sustained {args.sustain} s"))
            cpu = meter.stop()
            lag.stopping.set()
            lag.join()
            placed = sustained.statuses.get(201, 0) + sustained.statuses.get(202, 0) + sustained.statuses.get(200, 0)
            phases.append(sustained)
            say(f"[load {loadavg()}] sustained {args.sustain} s: {sustain_rate:,.0f} orders/s (target >= 1,000), "
                f"p50 {ms(percentile(sustained.latencies, .5))}, p99 {ms(percentile(sustained.latencies, .99))}, "
                f"{sustained.statuses}")
            say(cpu_line(cpu, placed, "placement"))
            if meter.by_role:
                say(meter.by_role_line(placed, "placement"))
            say(f"settlement lag during the phase: max {max((s for _, s in lag.samples), default=0):.1f} s")
        # Every accepted order reaches its verdict: wait for the engine to drain.
        deadline = time.monotonic() + 60
        while (pending := Order.objects.filter(market__symbol=symbol, status=Order.Status.PENDING).count()) and \
                time.monotonic() < deadline:
            time.sleep(0.5)
        say(f"orders still pending after the run: {pending} (target 0)")

        fixed = asyncio.run(open_loop(port, traders, args.rate, args.seconds, order, f"POST /orders at {args.rate}/s"))
        phases.append(fixed)
        say(f"[load {loadavg()}] at {args.rate} orders/s (open loop): p50 {ms(percentile(fixed.latencies, .5))}, "
            f"p99 {ms(percentile(fixed.latencies, .99))} (target p99 <= 15 ms), {fixed.statuses}")

        single_rate, single = asyncio.run(closed_loop(port, traders[:1], max(4, args.connections // 4), args.seconds,
                                                      order, "one account, closed loop"))
        say(f"[load {loadavg()}] one account alone: {single_rate:,.0f} orders/s (target >= 300), "
            f"p50 {ms(percentile(single.latencies, .5))}, {single.statuses}")
        phases.append(single)
    finally:
        for process in roles.values():
            stop(process)

    if args.report:
        args.report.mkdir(parents=True, exist_ok=True)
        plot(args.report, phases, lag.samples)
        command = " ".join(["bench/rest_load.py", *sys.argv[1:]])
        (args.report / "report.md").write_text(
            "# Order path under load\n\n"
            f"`{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n\n```\n" + "\n".join(lines)
            + "\n```\n\n![throughput and latency per second](order_path.png)\n")


if __name__ == "__main__":
    main()
