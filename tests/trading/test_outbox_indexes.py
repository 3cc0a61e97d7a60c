"""The outbox's indexes hold only the rows their readers look for (migration trading/0014),
and retention finds old events by id, with no index on their time."""
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import AccountFactory
from trading.models import OutboxEvent
from trading.outbox import selectors
from trading.outbox.services import outbox_prune

pytestmark = pytest.mark.django_db


def _plan(sql: str, params) -> str:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a Seq Scan then means no index serves it
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def _event(market, account=None, *, at):
    event = OutboxEvent.objects.create(market=market, account=account, channel="orders" if account else "trades",
                                       sequence=None, payload={})
    OutboxEvent.objects.filter(pk=event.pk).update(created_at=at)  # (auto_now_add sets it on create)
    return event


def test_every_index_but_the_primary_key_leaves_out_rows_its_readers_never_ask_for():
    if connection.vendor != "postgresql":
        pytest.skip("read from PostgreSQL's catalog")
    with connection.cursor() as cursor:
        cursor.execute("SELECT i.relname, pg_get_expr(x.indpred, x.indrelid) FROM pg_index x "
                       "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = 'trading_outboxevent'::regclass")
        indexes = dict(cursor.fetchall())
    assert indexes.pop("trading_outboxevent_pkey") is None
    assert indexes == {
        "outbox_account_id": "(account_id IS NOT NULL)",
        "outbox_account_market_id": "(account_id IS NOT NULL)",
        "outbox_account_sequence": "(account_id IS NOT NULL)",
        "outbox_public_market_id": "(account_id IS NULL)",
        "outbox_book_sequence": "((channel)::text = 'book'::text)",
    }


def test_the_relays_reread_uses_the_partial_indexes(market):
    # (the FIX reader's tail function: tests/trading/test_plan_cache.py)
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL plan")
    account = AccountFactory()
    with CaptureQueriesContext(connection) as queries:
        selectors.events_after_id(0, [market.pk], [account.pk])
    [relay] = [_plan(query["sql"], ()) for query in queries.captured_queries]
    assert "outbox_public_market_id" in relay and "Seq Scan" not in relay, relay


def test_prune_deletes_the_old_events_and_keeps_the_young(market, settings):
    settings.BOURSE_WS_RETENTION_S = 3600
    account = AccountFactory()
    now = timezone.now()
    old = [_event(market, account if i % 2 else None, at=now - timedelta(hours=3, minutes=-i)) for i in range(7)]
    young = [_event(market, account, at=now - timedelta(minutes=5 - i)) for i in range(4)]
    assert outbox_prune(now) == len(old)
    assert set(OutboxEvent.objects.values_list("id", flat=True)) == {e.pk for e in young}
    assert outbox_prune(now) == 0
    assert outbox_prune(now + timedelta(hours=2)) == len(young)  # then everything is old
    assert not OutboxEvent.objects.exists()


def test_prune_never_deletes_a_young_event_written_out_of_time_order(market, settings):
    # near the boundary rows may be out of time order (a writer's clock is read before its
    # insert takes an id): an old one after a young one waits for a later run
    settings.BOURSE_WS_RETENTION_S = 3600
    now = timezone.now()
    ages = [180, 170, 160, 150, 62, 59, 61, 58, 3, 2, 1]  # minutes, in id order
    events = {_event(market, at=now - timedelta(minutes=age)).pk: age for age in ages}
    outbox_prune(now)
    left = {events[pk] for pk in OutboxEvent.objects.values_list("id", flat=True)}
    assert {59, 58, 3, 2, 1} <= left  # every young event stays
    assert not left & {180, 170, 160, 150, 62}  # every old one before the disorder went
    outbox_prune(now + timedelta(minutes=30))  # a later run takes the straggler with the rest
    assert {events[pk] for pk in OutboxEvent.objects.values_list("id", flat=True)} == {3, 2, 1}


def test_prune_in_chunks_reads_by_primary_key(market, settings, monkeypatch):
    from trading.outbox import services

    monkeypatch.setattr(services, "PRUNE_CHUNK", 4)
    settings.BOURSE_WS_RETENTION_S = 60
    now = timezone.now()
    for i in range(11):
        _event(market, at=now - timedelta(hours=1, seconds=-i))
    kept = _event(market, at=now)
    with CaptureQueriesContext(connection) as queries:
        assert outbox_prune(now) == 11
    assert list(OutboxEvent.objects.values_list("id", flat=True)) == [kept.pk]
    selects = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT") and "trading_outboxevent" in q["sql"]]
    assert len(selects) <= 2 + 5 + 4  # first and last row, the bisection's probes, one read per chunk and the end
    if connection.vendor == "postgresql":
        for sql in selects:
            plan = _plan(sql, ())
            assert "Seq Scan" not in plan, (sql, plan)
