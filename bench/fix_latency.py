"""Benchmark of the FIX gateway (issue 16: one session, pipelined, >= 500 orders/s, and
NewOrderSingle -> first ExecutionReport p50 <= 5 ms at 100/s).

What runs: an engine process and a gateway process (``run_engine``, ``run_fix_gateway``) on
the database configured by DATABASE_URL (default: the embedded SQLite under
BOURSE_DATA_DIR), and a QuickFIX SocketInitiator in this process. Orders are passive limit
buys (they rest: the first report is the engine's ``New``), sent by a pacing loop; the
clock starts just before ``sendToTarget`` and stops when QuickFIX hands the first report
for that ClOrdID to ``fromApp``, so both QuickFIX hops are included. ``--pending-new`` logs on
with PendingNewReports (8014=Y): the first report is then the Pending New the gateway sends
when the submission has committed, and the engine's New is timed besides (printed as "to the
engine's New"; without the flag the two are the same report).

Baselines in the same run: TestRequest -> Heartbeat round trips over the same session (the
transport floor: two QuickFIX hops and the gateway's loop, no database), and
``order_submit`` called directly in this process (the service's own cost per order, which
bounds one session's rate when its orders are processed in sequence).

``--pipeline 1,32`` runs every rate once per value (a fresh gateway, engine and key each
time; the gateway's BOURSE_FIX_PIPELINE). Progress goes to stdout as it happens; every wait
is bounded (start-up, Logon, reports: no progress for ``--stall`` seconds) and a failure
exits non-zero with the gateway's and the engine's output and QuickFIX's event log.
``--report DIR`` writes ``report.md`` (the command, load averages, the figures) and
``fix_latency.png`` (latency percentiles per rate, first-report rate and p50/p99 per second).

Usage (migrates the database it is given, creates its own market and trader):
    BOURSE_DATA_DIR=var/bench BOURSE_ALLOW_GENERATED_SECRETS=1 .venv/bin/python bench/fix_latency.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bourse_bench REDIS_URL=redis://127.0.0.1:6379/7 \
        BOURSE_ALLOW_GENERATED_SECRETS=1 BOURSE_DATA_DIR=var/bench LOG_LEVEL=WARNING \
        .venv/bin/python bench/fix_latency.py --rates 100,500,1000 --seconds 8 --pipeline 1,32 \
        --report bench/reports/fix
"""
import argparse
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange.settings")

import django  # noqa: E402

django.setup()

import quickfix as fix  # noqa: E402

from accounts import services as account_services  # noqa: E402
from apikeys.services import apikey_create  # noqa: E402
from tests.fix.support import Processes, QuickFixApp, QuickFixClient, qf_new_order  # noqa: E402
from trading.services import market_create  # noqa: E402

LOGON_TIMEOUT_S = 20.0
BASELINE_TIMEOUT_S = 10.0
started_at = time.monotonic()


class BenchError(Exception):
    """The run cannot go on: printed with the processes' output, exit status 1."""


def say(text: str) -> None:
    print(f"[{time.monotonic() - started_at:6.1f} s, load {loadavg()}] {text}", flush=True)


def loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class TimingApp(QuickFixApp):
    """Records when the first report for each ClOrdID and each Heartbeat answer arrive, and
    what went wrong (Rejected reports, session Rejects, BusinessMessageRejects, Logout)."""

    def __init__(self, key, pending_new: str | None = None):
        super().__init__(key, pending_new=pending_new)
        self.first_report: dict[str, float] = {}
        self.new_report: dict[str, float] = {}  # the engine's New (ExecType 0): the first with 8014=N
        self.rejected: dict[str, str] = {}  # ClOrdID -> Text of an ExecutionReport Rejected
        self.session_rejects: list[str] = []  # 35=3 and 35=j: Text
        self.logout_text: str | None = None
        self.heartbeats: dict[str, float] = {}

    def fromApp(self, message, session_id):
        now = time.perf_counter()
        msg_type = message.getHeader().getField(35)
        if msg_type == "j":
            self.session_rejects.append(message.getField(58) if message.isSetField(58) else "(BusinessMessageReject)")
            return
        cl = message.getField(11) if message.isSetField(11) else None
        if cl is None:
            return
        if cl not in self.first_report:
            self.first_report[cl] = now
        if message.isSetField(150) and message.getField(150) == "0" and cl not in self.new_report:
            self.new_report[cl] = now
        if message.isSetField(39) and message.getField(39) == "8" and cl not in self.rejected:
            self.rejected[cl] = message.getField(58) if message.isSetField(58) else ""

    def fromAdmin(self, message, session_id):
        now = time.perf_counter()
        msg_type = message.getHeader().getField(35)
        if msg_type == "0" and message.isSetField(112):
            self.heartbeats[message.getField(112)] = now
        elif msg_type == "3":
            self.session_rejects.append(message.getField(58) if message.isSetField(58) else "(Reject)")
        elif msg_type == "5":
            self.logout_text = message.getField(58) if message.isSetField(58) else ""


def setup_market():
    tag = uuid.uuid4().hex[:6].upper()
    symbol = f"F{tag}-USD"
    market_create(symbol=symbol, tick_size="0.01", lot_size="0.0001", min_notional="1",
                  maker_fee_rate="0.001", taker_fee_rate="0.002", base_scale=8, quote_scale=6)
    return symbol


def setup_trader(label: str, symbol: str, history: int = 0):
    account = account_services.account_create(name=f"fix-bench-{label}-{uuid.uuid4().hex[:6]}")
    account_services.balance_deposit(account=account, asset="USD", amount="1000000000")
    created = apikey_create(account=account, scheme="hmac", scopes=["read", "trade"], label="fix bench")
    created.key.secret = created.secret
    if history:
        write_history(account, symbol, history)
    return created.key


def write_history(account, symbol: str, count: int) -> None:
    """``count`` past ``orders`` events of the account in the bench market, written through
    the outbox's own writer (so its sequences go on from them), as a trader with a working
    day behind it has: what the FIX reader's read of new events must not walk through. They
    lie below the reader's start, so no session is sent them."""
    from django.db import transaction

    from trading.models import Market
    from trading.outbox.services import Event, outbox_write

    market = Market.objects.get(symbol=symbol)
    with transaction.atomic():
        outbox_write([Event("orders", {"order_id": str(n), "status": "cancelled", "history": True},
                            market_id=market.pk, account_id=account.pk) for n in range(count)], announce=False)


def check_session(app: TimingApp, what: str) -> None:
    if app.logged_out.is_set() or not app.logged_on.is_set():
        raise BenchError(f"the FIX session ended during {what}: Logout text {app.logout_text!r}")


def send(message, client: QuickFixClient) -> None:
    if not fix.Session.sendToTarget(message, client.session_id):
        raise BenchError("QuickFIX refused to send (sendToTarget returned False: session not logged on)")


def paced(rate: float, count: int, action, app: TimingApp):
    """Call ``action(i)`` ``count`` times at ``rate`` per second (absolute schedule, so a
    slow call does not lower the rate); return the send times and the elapsed time."""
    sent = []
    start = time.perf_counter()
    for i in range(count):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        if i % 256 == 0:
            check_session(app, "sending")
        sent.append(time.perf_counter())
        action(i)
    return sent, time.perf_counter() - start


def wait_reports(app: TimingApp, ids: list[str], stall_s: float, drain_s: float, label: str) -> bool:
    """Until every id has its engine's verdict (New, or Rejected): True; False when
    ``drain_s`` seconds have passed (the session did not keep up: the rest are counted as
    missing). Fails when no report arrives for ``stall_s`` seconds (something is stuck, not
    slow)."""
    last_count, last_progress, last_say = -1, time.monotonic(), time.monotonic()
    deadline = time.monotonic() + drain_s
    while True:
        count = sum(1 for i in ids if i in app.new_report or i in app.rejected)
        now = time.monotonic()
        if count >= len(ids):
            return True
        if now > deadline:
            say(f"  {label}: {count}/{len(ids)} verdicts {drain_s:g} s after the last send: stopped waiting")
            return False
        if count != last_count:
            last_count, last_progress = count, now
        if now - last_progress > stall_s:
            missing = [i for i in ids if i not in app.new_report and i not in app.rejected]
            raise BenchError(
                f"{label}: no ExecutionReport for {stall_s:g} s; {count}/{len(ids)} first reports "
                f"(first missing ClOrdID {missing[0]}); session rejects {app.session_rejects[:3]}; "
                f"logged on {app.logged_on.is_set()}, Logout text {app.logout_text!r}")
        if now - last_say >= 2:
            last_say = now
            say(f"  {label}: {count}/{len(ids)} verdicts so far")
        check_session(app, f"{label} (waiting for reports)")
        time.sleep(0.02)


def heartbeat_baseline(client: QuickFixClient, app: TimingApp, count=200, rate=100.0):
    ids = [f"hb-{uuid.uuid4().hex[:6]}-{i}" for i in range(count)]

    def send_test_request(i):
        request = fix.Message()
        request.getHeader().setField(fix.MsgType(fix.MsgType_TestRequest))
        request.setField(fix.TestReqID(ids[i]))
        send(request, client)

    sent, _ = paced(rate, count, send_test_request, app)
    deadline = time.monotonic() + BASELINE_TIMEOUT_S
    while len([i for i in ids if i in app.heartbeats]) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    answered = [(app.heartbeats[i] - t) * 1000 for i, t in zip(ids, sent, strict=True) if i in app.heartbeats]
    if not answered:
        raise BenchError(f"no Heartbeat answered {count} TestRequests within {BASELINE_TIMEOUT_S:g} s")
    return answered


def run_rate(client: QuickFixClient, app: TimingApp, symbol: str, rate: int, seconds: float, stall_s: float,
             drain_s: float, label: str):
    count = max(1, int(rate * seconds))
    rng = random.Random(rate)
    prefix = f"{label}-{uuid.uuid4().hex[:4]}-"
    ids = [f"{prefix}{i}" for i in range(count)]
    orders = [qf_new_order(ids[i], fix.Side_BUY, f"{rng.randint(200, 500) / 10000:.4f}",
                           f"{rng.randint(5000, 9000) / 100:.2f}", symbol=symbol) for i in range(count)]
    sent, elapsed = paced(rate, count, lambda i: send(orders[i], client), app)
    say(f"  {label}: {count} orders sent in {elapsed:.2f} s ({count / elapsed:.0f}/s); waiting for their first reports")
    complete = wait_reports(app, ids, stall_s, drain_s, label)
    rejected = [app.rejected[i] for i in ids if i in app.rejected]
    if rejected:
        raise BenchError(f"{label}: {len(rejected)}/{count} orders Rejected, e.g. {rejected[0]!r}")
    # an order without its report when the wait stopped counts as infinitely late
    seen = [app.first_report.get(i, float("inf")) for i in ids]
    latencies = [(s - t) * 1000 for s, t in zip(seen, sent, strict=True)]
    # the engine's New: the same as the first report unless the session asked for Pending New
    new_latencies = [(app.new_report.get(i, float("inf")) - t) * 1000 for i, t in zip(ids, sent, strict=True)]
    received = [s for s in seen if s != float("inf")]
    last_report = max(received) if received else sent[-1]
    tenth = max(1, len(latencies) // 10)
    per_second = []  # (second since the first send, first reports that second, p50, p99 of orders sent that second)
    for second in range(int(last_report - sent[0]) + 1):
        window = [lat for t, lat in zip(sent, latencies, strict=True) if second <= t - sent[0] < second + 1]
        reports = sum(1 for s in seen if second <= s - sent[0] < second + 1)
        per_second.append((second, reports, percentile(window, .5) if window else None,
                           percentile(window, .99) if window else None))
    return {
        "rate": rate,
        "orders": count,
        "send_rate": count / elapsed,
        "report_rate": len(received) / (last_report - sent[0]),
        "missing": count - len(received),
        "complete": complete,
        "latencies": latencies,
        "p50": percentile(latencies, 0.50),
        "p90": percentile(latencies, 0.90),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies),
        "new_p50": percentile(new_latencies, 0.50),
        "new_p99": percentile(new_latencies, 0.99),
        "first_tenth_p50": statistics.median(latencies[:tenth]),
        "last_tenth_p50": statistics.median(latencies[-tenth:]),
        "drain_ms": (last_report - sent[-1]) * 1000,
        "per_second": per_second,
        "load": loadavg(),
    }


def service_baseline(account, symbol, count=50):
    """Milliseconds per ``order_submit`` called directly in this process (no FIX, no wait
    for the engine): the floor of one session's order path when it runs in sequence."""
    from trading.services import order_submit

    started = time.perf_counter()
    for _i in range(count):
        order_submit(account=account, market=symbol, side="buy", type="limit", price="50.00", quantity="0.0300")
    return (time.perf_counter() - started) * 1000 / count


def sustained(result) -> bool:
    """Every order reported, at the rate sent, with no backlog left at the end."""
    return result["complete"] and result["report_rate"] >= 0.95 * result["rate"] and result["drain_ms"] < 1000


def ms(value: float) -> str:
    return "not reported" if value == float("inf") else f"{value:.2f} ms"


def describe(result, baseline_p50) -> str:
    missing = "" if result["complete"] else f", {result['missing']} without a report when the wait stopped"
    return (
        f"{result['rate']:>5}/s: {result['orders']} orders, sent {result['send_rate']:.0f}/s, first reports "
        f"{result['report_rate']:.0f}/s ({'sustained' if sustained(result) else 'NOT sustained'}"
        f"{missing}); "
        f"latency p50 {ms(result['p50'])}, p90 {ms(result['p90'])}, p99 {ms(result['p99'])}, max {ms(result['max'])} "
        f"(p50 first/last tenth {ms(result['first_tenth_p50'])}/{ms(result['last_tenth_p50'])}; last report "
        f"{result['drain_ms']:.1f} ms after the last send); p50/baseline {result['p50'] / baseline_p50:.1f}x; "
        f"to the engine's New p50 {ms(result['new_p50'])}, p99 {ms(result['new_p99'])}; load {result['load']}"
    )


def run_config(symbol: str, pipeline: int, rates: list[int], args, lines: list[str]):
    """One gateway + engine with BOURSE_FIX_PIPELINE=pipeline, one QuickFIX session, every rate."""
    key = setup_trader(f"p{pipeline}", symbol, args.history)
    say(f"pipeline {pipeline}: starting the engine and the gateway")
    # The account's order budget (the ``orders`` policy, shared with REST) and the key's
    # request budget (``key``: every application message counts) are lifted: the point is
    # the gateway's speed, not the rate limiter's refusals.
    processes = Processes(markets=(symbol,), start_timeout=LOGON_TIMEOUT_S * 3, BOURSE_FIX_PIPELINE=str(pipeline),
                          BOURSE_RATE_LIMIT_ORDERS="10000000/10", BOURSE_RATE_LIMIT_KEY="10000000/10")
    app = TimingApp(key, pending_new="Y" if args.pending_new else None)
    client = None
    results = []
    try:
        say(f"pipeline {pipeline}: gateway on port {processes.port} (pids: gateway {processes.gateway.pid}, "
            f"engine {processes.engine.pid}); logging on")
        client = QuickFixClient(key, processes.port, heartbeat=30, app=app)
        if not client.start(timeout=LOGON_TIMEOUT_S):
            raise BenchError(f"no Logon within {LOGON_TIMEOUT_S:g} s (Logout text {app.logout_text!r})")
        say(f"pipeline {pipeline}: logged on; warm-up (50 orders)")
        if not run_rate(client, app, symbol, 50, 1, args.stall, args.drain, f"p{pipeline}-warmup")["complete"]:
            raise BenchError(f"the warm-up's 50 orders were not all reported within {args.drain:g} s")
        baseline = heartbeat_baseline(client, app)
        service_ms = service_baseline(key.account, symbol)
        hb50 = percentile(baseline, 0.5)
        for line in (
            f"pipeline {pipeline}: baseline TestRequest->Heartbeat p50 {hb50:.3f} ms, p99 {percentile(baseline, 0.99):.3f} ms "
            f"({len(baseline)} round trips)",
            f"pipeline {pipeline}: baseline order_submit called directly: {service_ms:.2f} ms per order "
            f"({1000 / service_ms:.0f} orders/s in sequence)",
        ):
            lines.append(line)
            say(line)
        for rate in rates:
            if args.pid_file:
                Path(args.pid_file).write_text(f"{processes.gateway.pid} {processes.engine.pid}\n")
            say(f"pipeline {pipeline}: {rate}/s for {args.seconds:g} s")
            result = run_rate(client, app, symbol, rate, args.seconds, args.stall, args.drain, f"p{pipeline}-r{rate}")
            result["pipeline"] = pipeline
            results.append(result)
            line = f"pipeline {pipeline}: " + describe(result, hb50)
            lines.append(line)
            say(line)
            if not result["complete"]:
                line = (f"pipeline {pipeline}: higher rates skipped (the session did not keep up with {rate}/s; "
                        "its backlog would delay the next rate's orders)")
                lines.append(line)
                say(line)
                break
    except BenchError as error:
        if client is not None:
            events = sorted(Path(client.dir, "log").glob("*event*.log"))
            tail = "".join(events[0].read_text().splitlines(keepends=True)[-20:]) if events else "(none)"
        else:
            tail = "(no client)"
        if client is not None:
            client.stop()
            client = None
        output = processes.stop()
        raise BenchError(f"{error}\n--- QuickFIX event log (last lines) ---\n{tail}\n"
                         f"--- gateway and engine output (last 60 lines) ---\n{''.join(output.splitlines(keepends=True)[-60:])}"
                         ) from None
    finally:
        if client is not None:
            client.stop()
        processes.stop()
    return results


def plot(path: Path, results) -> bool:
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    qs = [50, 75, 90, 95, 99, 99.9]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 8), constrained_layout=True)
    for result in results:
        label = f"pipeline {result['pipeline']}, {result['rate']}/s"
        points = [(str(q), percentile(result["latencies"], q / 100)) for q in qs]
        points = [(q, v) for q, v in points if v != float("inf")]  # orders never reported are off the chart
        ax1.plot([q for q, _ in points], [v for _, v in points], marker="o", label=label)
        rows = [r for r in result["per_second"] if r[2] is not None and r[2] != float("inf")]
        ax2.plot([r[0] for r in rows], [r[2] for r in rows], marker=".", label=f"{label} p50")
    ax1.set_yscale("log")
    ax1.set_xlabel("percentile")
    ax1.set_ylabel("NewOrderSingle -> first ExecutionReport (ms)")
    ax1.axhline(5, color="grey", linestyle="--", linewidth=1)
    ax1.set_title("latency percentiles per run (dashed: the 5 ms p50 target)")
    ax1.legend(fontsize=8)
    ax2.set_yscale("log")
    ax2.set_xlabel("second of the run (orders sent that second)")
    ax2.set_ylabel("p50 (ms)")
    ax2.set_title("p50 per second of sending: flat when the session keeps up, rising when orders queue")
    ax2.legend(fontsize=7)
    fig.savefig(path, dpi=90)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,1000", help="orders/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of sending per rate")
    parser.add_argument("--pipeline", default="1", help="the gateway's BOURSE_FIX_PIPELINE; comma-separated runs each")
    parser.add_argument("--stall", type=float, default=15.0, help="fail when no report arrives for this long")
    parser.add_argument("--drain", type=float, default=20.0,
                        help="seconds to wait for a rate's reports after its last send before counting the rest as missing")
    parser.add_argument("--report", type=Path, help="write report.md and fix_latency.png here")
    parser.add_argument("--history", type=int, default=0,
                        help="past orders events of the bench trader in the outbox before it logs on (0: a new trader)")
    parser.add_argument("--pending-new", action="store_true",
                        help="log on with PendingNewReports (8014=Y): the first report is the Pending New sent when "
                             "the submission commits; the engine's New is timed besides")
    parser.add_argument("--pid-file", help="write the gateway's and the engine's pids here before each rate (profiling)")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    pipelines = [int(p) for p in args.pipeline.split(",")]

    say(f"migrating the database ({django.db.connection.vendor})")
    from benchdb import prepare  # bench/ (the script's folder) is on the path

    print(prepare(), flush=True)
    symbol = setup_market()
    lines = [f"database: {django.db.connection.vendor}; market {symbol}; {args.seconds:g} s per rate; "
             f"rates {args.rates}; pipeline {args.pipeline}; pending new {'on' if args.pending_new else 'off'}; "
             f"load average at start {loadavg()}; {os.cpu_count()} CPUs"]
    say(lines[0])
    results = []
    try:
        for pipeline in pipelines:
            results += run_config(symbol, pipeline, rates, args, lines)
    except BenchError as error:
        print(f"\nFIX BENCH FAILED: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    say("done")
    print("\n".join(lines), flush=True)
    if args.report:
        args.report.mkdir(parents=True, exist_ok=True)
        plotted = plot(args.report / "fix_latency.png", results)
        command = " ".join(["bench/fix_latency.py", *sys.argv[1:]])
        table = ["| pipeline | rate | sent/s | first reports/s | sustained | p50 | p90 | p99 | max | New p50 | New p99 "
                 "| load (1/5/15 min) |",
                 "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        table += [f"| {r['pipeline']} | {r['rate']}/s | {r['send_rate']:.0f} | {r['report_rate']:.0f} | "
                  f"{'yes' if sustained(r) else 'no'} | {ms(r['p50'])} | {ms(r['p90'])} | {ms(r['p99'])} | {ms(r['max'])} | "
                  f"{ms(r['new_p50'])} | {ms(r['new_p99'])} | {r['load']} |" for r in results]
        (args.report / "report.md").write_text(
            "# FIX gateway: NewOrderSingle -> first ExecutionReport, one session\n\n"
            f"`{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n\n" + "\n".join(table)
            + "\n\n```\n" + "\n".join(lines) + "\n```\n"
            + ("\n![latency percentiles and p50 per second](fix_latency.png)\n" if plotted else ""))
        say(f"report written to {args.report}")


if __name__ == "__main__":
    main()
