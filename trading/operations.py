"""What an operator asks of a running Bourse: is each role up, and how far behind is it.

``readiness()`` checks every part — the database, Redis, the engine's ownership and heartbeat
per market, the Celery worker, settlement lag, the last reconciliation, the FIX gateway, audit
sealing — and returns one JSON-able report: ``/readyz`` answers it (503 when a required part
is down), ``manage.py status`` prints it, and the metrics endpoint exposes the same numbers
as gauges (``metric_families``). Every part costs one or two small queries; none locks.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, Min
from django.utils import timezone

from audit.models import AuditPending
from exchange.models import Heartbeat

from .models import Command, EngineState, Market, ReconciliationReport, Trade

log = logging.getLogger("bourse.operations")

# Every part readiness knows, in the order it reports them.
PARTS = ("database", "redis", "engine", "worker", "settlement", "reconciliation", "fix", "audit")


def _age(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else round(max(0.0, (now - moment).total_seconds()), 3)


def _error(exc: Exception) -> str:
    return f"{exc.__class__.__name__}: {str(exc).strip().splitlines()[0][:200]}" if str(exc).strip() else exc.__class__.__name__


def check_database(now: datetime) -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"ok": True, "vendor": connection.vendor}


def check_redis(now: datetime) -> dict:
    if not settings.REDIS_URL:
        return {"ok": True, "configured": False}
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()
    return {"ok": True, "configured": True}


def _instances(role: str, now: datetime, stale_s: float) -> list[dict]:
    instances = []
    for row in Heartbeat.objects.filter(role=role, beat_at__gte=now - timedelta(days=1)).order_by("-beat_at"):
        age = round(max(0.0, (now - row.beat_at).total_seconds()), 3)
        instances.append({"instance": row.instance, "heartbeat_age_s": age, "alive": age <= stale_s,
                          "started_at": row.started_at.isoformat(), **row.details})
    return instances


def check_engine(now: datetime) -> dict:
    """Per market: an owner (fencing token in ``EngineState``) whose process beats, that is
    not failing or refusing the market, and no pending command older than the stall bound."""
    stale_s = settings.BOURSE_HEARTBEAT_STALE_S
    instances = _instances("engine", now, stale_s)
    live_tokens: dict[str, dict] = {}
    for instance in instances:
        if instance["alive"]:
            for symbol, owned in (instance.get("markets") or {}).items():
                live_tokens[owned.get("token", "")] = {"instance": instance["instance"], "symbol": symbol, **owned}
    pending = {
        row["market_id"]: row
        for row in Command.objects.filter(processed=False).values("market_id").annotate(n=Count("id"), oldest=Min("created_at"))
    }
    states = {s.market_id: s for s in EngineState.objects.all()}
    markets = {}
    for market in Market.objects.order_by("symbol"):
        state = states.get(market.pk)
        queue = pending.get(market.pk, {"n": 0, "oldest": None})
        report: dict[str, Any] = {
            "owner": None,
            "owner_since": state.owner_since.isoformat() if state and state.owner_since else None,
            "last_batch_at": state.updated_at.isoformat() if state and state.command_sequence else None,
            "pending_commands": queue["n"],
            "oldest_pending_s": _age(queue["oldest"], now),
        }
        owner = live_tokens.get(state.owner_token) if state and state.owner_token else None
        if owner is None:
            report["error"] = "no live engine owns this market (no owner, or its process stopped beating)"
        else:
            report["owner"] = owner["instance"]
            if owner.get("refused"):
                report["error"] = f"the engine refuses this market's book: {owner['refused']}"
            elif owner.get("failing"):
                report["error"] = "the engine cannot run this market and is retrying (see its log, alert engine_market_failing)"
            elif (report["oldest_pending_s"] or 0) > settings.BOURSE_ENGINE_STALL_S:
                report["error"] = f"a command has waited {report['oldest_pending_s']:.0f} s (bound {settings.BOURSE_ENGINE_STALL_S} s)"
        report["ok"] = "error" not in report
        markets[market.symbol] = report
    down = [symbol for symbol, r in markets.items() if not r["ok"]]
    result: dict[str, Any] = {"ok": not down, "markets": markets, "instances": instances}
    if down:
        result["error"] = "; ".join(f"{symbol}: {markets[symbol]['error']}" for symbol in down)
    return result


def _role_alive(role: str, now: datetime, stale_s: float, what: str) -> dict:
    instances = _instances(role, now, stale_s)
    alive = [i for i in instances if i["alive"]]
    result: dict[str, Any] = {"ok": bool(alive), "instances": instances, "stale_after_s": stale_s}
    if not alive:
        last = min((i["heartbeat_age_s"] for i in instances), default=None)
        result["error"] = f"{what} ({'never seen' if last is None else f'last heartbeat {last:.0f} s ago'})"
    return result


def check_worker(now: datetime) -> dict:
    # Beat schedules the worker's heartbeat task: a stale heartbeat means the worker, beat or
    # the broker between them is down; settlement and reconciliation stop with any of them.
    stale_s = 3 * settings.BOURSE_WORKER_HEARTBEAT_S + settings.BOURSE_HEARTBEAT_STALE_S
    return _role_alive("worker", now, stale_s, "no Celery worker has run the heartbeat task (worker, beat or broker down)")


def check_fix(now: datetime) -> dict:
    return _role_alive("fix", now, settings.BOURSE_HEARTBEAT_STALE_S, "no FIX gateway is beating")


def check_settlement(now: datetime) -> dict:
    oldest = Trade.objects.filter(settled=False).aggregate(oldest=Min("created_at"), n=Count("id"))
    lag = _age(oldest["oldest"], now) or 0.0
    budget = settings.BOURSE_SETTLEMENT_LAG_BUDGET_S
    result = {"ok": lag <= budget, "lag_s": lag, "budget_s": budget, "unsettled_trades": oldest["n"]}
    if lag > budget:
        result["error"] = f"the oldest unsettled trade is {lag:.0f} s old (budget {budget} s)"
    return result


def check_reconciliation(now: datetime) -> dict:
    report = ReconciliationReport.objects.exclude(finished_at=None).order_by("-id").first()
    if report is None:
        return {"ok": True, "report": None, "note": "no reconciliation has run yet"}
    assert report.finished_at is not None  # excluded above
    age = _age(report.finished_at, now)
    stale_s = 3 * settings.BOURSE_RECONCILE_EVERY_S + 60
    result: dict[str, Any] = {
        "ok": report.ok and (age or 0) <= stale_s, "report": report.pk, "finished_at": report.finished_at.isoformat(),
        "age_s": age, "mismatches": report.mismatches,
        "failed_checks": [c["check"] for c in report.checks if not c.get("ok")],
    }
    if not report.ok:
        result["error"] = f"the last reconciliation (#{report.pk}) found {report.mismatches} mismatch(es)"
    elif not result["ok"]:
        result["error"] = f"the last reconciliation finished {age:.0f} s ago (expected every {settings.BOURSE_RECONCILE_EVERY_S} s)"
    return result


def check_audit(now: datetime) -> dict:
    oldest = AuditPending.objects.aggregate(oldest=Min("event__created_at"), n=Count("event_id"))
    lag = _age(oldest["oldest"], now) or 0.0
    budget = settings.BOURSE_AUDIT_SEAL_LAG_BUDGET_S
    result = {"ok": lag <= budget, "sealing_lag_s": lag, "budget_s": budget, "unsealed_events": oldest["n"]}
    if lag > budget:
        result["error"] = f"the oldest unsealed audit event is {lag:.0f} s old (budget {budget} s)"
    return result


CHECKS = {
    "database": check_database, "redis": check_redis, "engine": check_engine, "worker": check_worker,
    "settlement": check_settlement, "reconciliation": check_reconciliation, "fix": check_fix, "audit": check_audit,
}


def required_parts() -> list[str]:
    required = list(settings.BOURSE_READINESS_REQUIRED)
    if not settings.REDIS_URL and "redis" in required:
        required.remove("redis")  # nothing to reach: the embedded mode has no Redis
    return required


def readiness() -> dict:
    """Every part's state, and whether the required ones are all up (``ready``)."""
    now = timezone.now()
    required = required_parts()
    parts: dict[str, dict] = {}
    database_up = True
    for name, check in CHECKS.items():
        if name not in ("database", "redis") and not database_up:
            parts[name] = {"ok": False, "error": "unknown: the database is unreachable"}
        else:
            try:
                parts[name] = check(now)
            except Exception as exc:  # noqa: BLE001 -- a part that cannot be checked is down; the reason is reported
                parts[name] = {"ok": False, "error": _error(exc)}
                if name == "database":
                    database_up = False
        parts[name]["required"] = name in required
    down = [name for name in PARTS if name in required and not parts[name]["ok"]]
    return {
        "status": "ok" if not down else "unavailable",
        "mode": "embedded" if settings.EMBEDDED else "production",
        "time": now.isoformat(),
        "down": down,
        # One line per part: "ok", or "error: why" (what a load balancer or a person reads first).
        "checks": {name: "ok" if part["ok"] else f"error: {part.get('error', 'down')}" for name, part in parts.items()},
        "parts": parts,
    }


def metric_families(report: dict) -> Iterator[Any]:
    """The readiness report as Prometheus gauges (read at scrape time, never on a hot path)."""
    from prometheus_client.core import GaugeMetricFamily

    parts = report["parts"]
    up = GaugeMetricFamily("bourse_part_up", "1 when the part is up (readiness), else 0.", labels=["part", "required"])
    for name, part in parts.items():
        up.add_metric([name, "true" if part.get("required") else "false"], 1.0 if part["ok"] else 0.0)
    yield up
    yield GaugeMetricFamily("bourse_ready", "1 when every required part is up (/readyz answers 200).",
                            value=1.0 if report["status"] == "ok" else 0.0)
    engine = parts["engine"].get("markets") or {}
    owned = GaugeMetricFamily("bourse_engine_market_up", "1 when a live engine owns the market and runs it.", labels=["market"])
    depth = GaugeMetricFamily("bourse_engine_queue_depth", "Commands waiting for the engine.", labels=["market"])
    oldest = GaugeMetricFamily("bourse_engine_oldest_pending_seconds", "Age of the oldest command waiting for the engine.",
                               labels=["market"])
    for symbol, market in engine.items():
        owned.add_metric([symbol], 1.0 if market["ok"] else 0.0)
        depth.add_metric([symbol], float(market["pending_commands"]))
        oldest.add_metric([symbol], float(market["oldest_pending_s"] or 0.0))
    yield from (owned, depth, oldest)
    beats = GaugeMetricFamily("bourse_heartbeat_age_seconds", "Seconds since each role process last beat.",
                              labels=["role", "instance"])
    for role in ("engine", "worker", "fix"):
        for instance in parts[role].get("instances") or []:
            beats.add_metric([role, instance["instance"]], float(instance["heartbeat_age_s"]))
    yield beats
    settlement = parts["settlement"]
    if "lag_s" in settlement:
        yield GaugeMetricFamily("bourse_settlement_lag_seconds", "Age of the oldest unsettled trade (0: none).",
                                value=float(settlement["lag_s"]))
        yield GaugeMetricFamily("bourse_settlement_unsettled_trades", "Trades not settled yet.",
                                value=float(settlement["unsettled_trades"]))
    reconciliation = parts["reconciliation"]
    if reconciliation.get("report"):
        yield GaugeMetricFamily("bourse_reconciliation_last_ok", "1 when the last reconciliation found no mismatch.",
                                value=1.0 if not reconciliation.get("mismatches") else 0.0)
        yield GaugeMetricFamily("bourse_reconciliation_last_mismatches", "Mismatches the last reconciliation found.",
                                value=float(reconciliation["mismatches"]))
        yield GaugeMetricFamily("bourse_reconciliation_last_age_seconds", "Seconds since the last reconciliation finished.",
                                value=float(reconciliation["age_s"]))
    audit = parts["audit"]
    if "sealing_lag_s" in audit:
        yield GaugeMetricFamily("bourse_audit_sealing_lag_seconds", "Age of the oldest audit event not sealed yet (0: none).",
                                value=float(audit["sealing_lag_s"]))
        yield GaugeMetricFamily("bourse_audit_unsealed_events", "Audit events waiting to be sealed.",
                                value=float(audit["unsealed_events"]))
