"""Prometheus metrics: what every role counts, and the protected ``/metrics`` exposition.

Each process counts in memory — or, with ``PROMETHEUS_MULTIPROC_DIR`` set (``make run`` sets
it; production sets it per machine, docs/operations.md), in a memory-mapped file per process
in that shared directory — and the ``/metrics`` view of any web process on the machine adds
up every process there: REST/WebSocket servers, the engine, the Celery worker, the FIX
gateway. Recording is an in-memory (or mmap) increment: no database or Redis round trip on
any request path. What lives in the database (settlement lag, queue depth, the last
reconciliation, audit sealing lag, role heartbeats) is read when Prometheus scrapes, from
the readiness report (``trading.operations``).

Names follow Prometheus conventions: ``bourse_`` prefix, base units (seconds), ``_total``
for counters (the client library appends it).
"""
from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path

if "PROMETHEUS_MULTIPROC_DIR" in os.environ and not os.environ["PROMETHEUS_MULTIPROC_DIR"].strip():
    # prometheus-client takes a set but empty variable as the current directory: unset means off.
    del os.environ["PROMETHEUS_MULTIPROC_DIR"]
if os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip():
    # Each process writes its files there from its first metric on: the folder must exist.
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"].strip(), exist_ok=True)

from prometheus_client import (  # noqa: E402 -- after the folder exists
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "bourse_http_requests", "HTTP requests answered, by route pattern, method and status.", ["route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "bourse_http_request_duration_seconds", "Time to answer an HTTP request, by route pattern and method.",
    ["route", "method"], buckets=LATENCY_BUCKETS,
)
ORDER_VERDICT = Histogram(
    "bourse_order_verdict_seconds",
    "From an order's submission to the engine's verdict (outcome verdict) or to giving up waiting (pending).",
    ["outcome"], buckets=LATENCY_BUCKETS,
)
ENGINE_BATCH = Histogram(
    "bourse_engine_batch_commands", "Commands the engine took into one batch (one commit), per market.", ["market"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
)
ENGINE_COMMIT = Histogram(
    "bourse_engine_commit_seconds", "Time to write and commit one engine batch, per market.", ["market"],
    buckets=LATENCY_BUCKETS,
)
WS_CONNECTIONS = Gauge("bourse_ws_connections", "Open WebSocket connections.", multiprocess_mode="livesum")
WS_SUBSCRIPTIONS = Gauge("bourse_ws_subscriptions", "WebSocket channel subscriptions held.", multiprocess_mode="livesum")
WS_FANOUT = Histogram(
    "bourse_ws_fanout_seconds", "Time to hand one event to every local subscriber of its channel.", buckets=LATENCY_BUCKETS
)
WS_SLOW_DROPPED = Counter("bourse_ws_slow_clients_dropped", "WebSocket clients dropped for not reading their events.")
FIX_SESSIONS = Gauge("bourse_fix_sessions", "Logged-on FIX sessions.", multiprocess_mode="livesum")
FIX_MESSAGES = Counter("bourse_fix_messages", "FIX messages, by direction (in, out) and MsgType.", ["direction", "msg_type"])
RATE_LIMIT_REFUSALS = Counter("bourse_rate_limit_refusals", "Requests refused with 429, by rate-limit policy.", ["policy"])
AUTH_REFUSALS = Counter(
    "bourse_auth_refusals", "Refused authentications, by transport (api, ws, fix) and error code.", ["channel", "code"]
)
RECONCILIATION_RUNS = Counter("bourse_reconciliation_runs", "Reconciliation runs, by result (ok, mismatch).", ["result"])
SETTLEMENT_TRADES = Counter("bourse_settlement_trades", "Trades settled.")


def engine_batch(market: str, commands: int, commit_seconds: float) -> None:
    ENGINE_BATCH.labels(market).observe(commands)
    ENGINE_COMMIT.labels(market).observe(commit_seconds)


def multiprocess_dir() -> Path | None:
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    return Path(folder) if folder else None


def _forget_dead_processes(folder: Path) -> None:
    """Drop the live-gauge files of processes gone (a crashed role's connections are not
    open any more); counters and histograms of dead processes keep counting in the sum."""
    from prometheus_client import multiprocess

    for path in folder.glob("gauge_live*_*.db"):
        try:
            pid = int(path.stem.rsplit("_", 1)[1])
            os.kill(pid, 0)
        except ValueError:
            continue
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, str(folder))
        except PermissionError:
            continue  # alive, another user's


def exposition(extra_collectors=()) -> tuple[bytes, str]:
    """The text exposition: this machine's processes (multiprocess mode) or this process,
    then ``extra_collectors`` (read now)."""
    folder = multiprocess_dir()
    if folder is not None:
        from prometheus_client import multiprocess

        _forget_dead_processes(folder)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(folder))
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    if extra_collectors:
        extra = CollectorRegistry()
        for collector in extra_collectors:
            extra.register(collector)
        body += generate_latest(extra)
    return body, CONTENT_TYPE_LATEST


def allowed(client_address: str, authorization: str, *, forwarded_by_untrusted: bool, allow: list[str], token: str) -> bool:
    """Whether a scrape may read ``/metrics``: the bearer token when one is set (compared in
    constant time), else a client address inside ``allow`` — unless the request came through
    a proxy Bourse does not trust, whose client address cannot be known."""
    if token:
        scheme, _, supplied = authorization.partition(" ")
        if scheme.lower() == "bearer" and secrets.compare_digest(supplied.strip().encode(), token.encode()):
            return True
    if forwarded_by_untrusted:
        return False
    try:
        address = ipaddress.ip_address(client_address)
    except ValueError:
        return False
    for cidr in allow:
        try:
            if address in ipaddress.ip_network(cidr, strict=False):
                return True
        except ValueError:
            continue
    return False
