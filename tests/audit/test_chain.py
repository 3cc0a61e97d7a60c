"""The hash chain: sealing, verification, tamper detection, and the append-only guard."""
from io import StringIO
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from audit import chain, selectors, triggers
from audit.models import AuditEvent, AuditPending, AuditSeal
from audit.selectors import audit_verify
from audit.services import audit_record, audit_seal

pytestmark = pytest.mark.django_db


def record_many(n: int) -> list[AuditEvent]:
    return [audit_record("market.created", target=("trading.market", i), after={"i": i}) for i in range(n)]


def tamper(sql: str, params=()) -> None:
    """Change rows behind the guard's back, as an attacker with table access would."""
    with transaction.atomic(), triggers.suspended(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_events_are_written_unsealed_and_sealed_in_insertion_order():
    events = record_many(5)
    assert AuditEvent.objects.filter(seal__isnull=True).count() == 5
    assert list(AuditPending.objects.order_by("event_id").values_list("event_id", flat=True)) == [e.pk for e in events]

    assert audit_seal() == 5

    sealed = list(AuditEvent.objects.select_related("seal").order_by("seal__seq"))
    assert [e.pk for e in sealed] == [e.pk for e in events]
    assert [e.seq for e in sealed] == [1, 2, 3, 4, 5]
    assert sealed[0].prev_hash == chain.GENESIS
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(sealed, sealed[1:], strict=False))
    assert audit_seal() == 0  # nothing left
    assert not AuditPending.objects.exists()  # the seal took each event off the queue


def test_sealing_continues_the_chain_from_its_head():
    record_many(3)
    audit_seal()
    head = AuditEvent.objects.get(seal__seq=3)
    record_many(2)
    audit_seal(batch_size=1)  # several batches
    assert AuditEvent.objects.get(seal__seq=4).prev_hash == head.hash
    assert audit_verify().checked == 5


def test_intact_chain_verifies_and_reports_unsealed_events():
    record_many(4)
    audit_seal()
    late = audit_record("market.halted", target=("trading.market", 1))

    report = audit_verify()

    assert report.ok and report.checked == 4 and report.head_seq == 4
    assert report.head_hash == AuditEvent.objects.get(seal__seq=4).hash
    assert (report.unsealed, report.oldest_unsealed_id) == (1, late.pk)


@pytest.mark.parametrize("column, value", [("reason", "nothing to see"), ("actor_label", "someone-else"), ("after", '{"i": 99}')])
def test_altering_one_row_is_detected_at_that_row(column, value):
    record_many(6)
    audit_seal()
    victim = AuditEvent.objects.get(seal__seq=4)

    tamper(f"UPDATE audit_auditevent SET {column} = %s WHERE id = %s", [value, victim.pk])

    report = audit_verify()
    assert not report.ok
    assert (report.broken.seq, report.broken.event_id) == (4, victim.pk)
    assert "altered" in report.broken.problem
    assert report.checked == 3


def test_recomputing_the_altered_rows_hash_breaks_the_next_link():
    record_many(5)
    audit_seal()
    victim = AuditEvent.objects.get(seal__seq=2)
    victim.reason = "rewritten"
    forged = chain.event_hash(victim, 2, victim.prev_hash)

    tamper("UPDATE audit_auditevent SET reason = %s WHERE id = %s", ["rewritten", victim.pk])
    tamper("UPDATE audit_auditseal SET hash = %s WHERE event_id = %s", [forged, victim.pk])

    report = audit_verify()
    assert report.broken.seq == 3 and "prev_hash" in report.broken.problem


def test_deleting_the_last_sealed_event_is_detected():
    """The chain's last seal outlives its event: the walk must not end one short and pass."""
    events = record_many(5)
    audit_seal()
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[4].pk])

    report = audit_verify()
    assert (report.broken.seq, report.broken.event_id) == (5, events[4].pk)
    assert "missing" in report.broken.problem and report.checked == 4 and not report.ok


def test_a_sealed_event_gone_at_a_chunk_boundary_is_detected(monkeypatch):
    """The walk reads the seals in chunks, each joined to its events anew: an event gone at
    the start of a chunk is found by the position the chunk skips."""
    monkeypatch.setattr(selectors, "CHUNK", 2)
    events = record_many(6)
    audit_seal()
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[2].pk])

    report = audit_verify()
    assert (report.broken.seq, report.broken.event_id, report.checked) == (3, events[2].pk, 2)


def test_seals_and_events_gone_for_more_than_a_chunk_are_detected(monkeypatch):
    """A gap wider than a chunk: a chunk comes back empty, and the walk must not stop there."""
    monkeypatch.setattr(selectors, "CHUNK", 2)
    record_many(8)
    audit_seal()
    tamper("DELETE FROM audit_auditevent WHERE id IN (SELECT event_id FROM audit_auditseal WHERE seq BETWEEN 3 AND 6)")
    tamper("DELETE FROM audit_auditseal WHERE seq BETWEEN 3 AND 6")

    report = audit_verify()
    assert (report.broken.seq, report.broken.event_id, report.checked) == (3, None, 2)
    assert "3..6" in report.broken.problem


def test_deleting_an_event_and_its_seal_is_detected_as_a_gap():
    events = record_many(5)
    audit_seal()
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[2].pk])
    tamper("DELETE FROM audit_auditseal WHERE seq = 3")

    report = audit_verify()
    assert report.broken.seq == 3 and report.broken.event_id is None
    assert "missing" in report.broken.problem


def test_deleting_a_sealed_event_is_detected_at_its_position():
    events = record_many(5)
    audit_seal()
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[2].pk])

    report = audit_verify()
    assert (report.broken.seq, report.broken.event_id) == (3, events[2].pk)
    assert "missing" in report.broken.problem and report.checked == 2


def test_an_event_taken_off_the_queue_unsealed_is_reported_stranded():
    record_many(2)
    audit_seal()
    lost = audit_record("market.halted", target=("trading.market", 1))
    assert audit_verify().ok  # queued: not sealed yet, but it will be

    with transaction.atomic():
        AuditPending.objects.filter(event_id=lost.pk).delete()  # the queue is not guarded: its rows are deleted by design
    report = audit_verify()
    assert (report.unsealed, report.stranded, report.ok) == (1, 1, False)
    assert report.broken is None
    with pytest.raises(CommandError, match="missing from the sealer's queue"):
        call_command("audit_verify", stdout=StringIO())


def test_anchor_detects_a_trail_cut_short():
    record_many(5)
    audit_seal()
    anchor = {5: AuditEvent.objects.get(seal__seq=5).hash}
    assert audit_verify(anchors=anchor).ok

    tamper("DELETE FROM audit_auditseal WHERE seq >= 4")

    report = audit_verify(anchors=anchor)
    assert report.broken.seq == 5 and "cut short" in report.broken.problem


def test_audit_verify_command_prints_head_and_fails_on_a_broken_chain():
    record_many(3)
    audit_seal()
    out = StringIO()
    call_command("audit_verify", stdout=out)
    head = AuditEvent.objects.get(seal__seq=3)
    assert f"head 3:{head.hash}" in out.getvalue() and "intact" in out.getvalue()
    call_command("audit_verify", "--anchor", f"3:{head.hash}", stdout=StringIO())

    tamper("UPDATE audit_auditevent SET reason = 'x' WHERE id = %s", [AuditSeal.objects.get(seq=2).event_id])
    with pytest.raises(CommandError, match="BROKEN at position 2"):
        call_command("audit_verify", stdout=StringIO())


def test_audit_verify_command_rejects_a_malformed_anchor():
    with pytest.raises(CommandError, match="SEQ:HASH"):
        call_command("audit_verify", "--anchor", "3:nothex", stdout=StringIO())


def test_audit_seal_command_seals():
    record_many(2)
    out = StringIO()
    call_command("audit_seal", stdout=out)
    assert "Sealed 2 event(s)" in out.getvalue()
    assert not AuditEvent.objects.filter(seal__isnull=True).exists()


# --- The guard ---------------------------------------------------------------------------


def refused(sql: str, params=()) -> bool:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
    except IntegrityError as exc:
        assert "append-only" in str(exc)
        return True
    return False


def test_update_and_delete_are_refused_by_the_database():
    event, other = record_many(2)
    audit_seal()

    assert refused("UPDATE audit_auditevent SET reason = 'rewritten' WHERE id = %s", [event.pk])
    assert refused("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])
    assert refused("DELETE FROM audit_auditevent")
    assert refused("UPDATE audit_auditseal SET hash = %s WHERE event_id = %s", ["f" * 64, event.pk])
    assert refused("UPDATE audit_auditseal SET seq = 7 WHERE event_id = %s", [event.pk])
    assert refused("DELETE FROM audit_auditseal WHERE event_id = %s", [event.pk])
    assert refused("DELETE FROM audit_auditseal")
    event.refresh_from_db()
    assert event.reason == "" and AuditEvent.objects.count() == 2 and AuditSeal.objects.count() == 2
    assert triggers.is_installed()
    assert audit_verify().ok


def test_an_unsealed_event_is_refused_changes_too():
    event = record_many(1)[0]  # nothing about a write before the seal is allowed either
    assert refused("UPDATE audit_auditevent SET reason = 'x' WHERE id = %s", [event.pk])
    assert refused("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])
    assert audit_seal() == 1 and audit_verify().ok


def test_the_orm_cannot_change_or_delete_events_or_seals_either():
    event = record_many(1)[0]
    event.reason = "rewritten"
    with pytest.raises(IntegrityError), transaction.atomic():
        event.save()
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    audit_seal()
    seal = AuditSeal.objects.get(event_id=event.pk)
    seal.hash = "0" * 64
    with pytest.raises(IntegrityError), transaction.atomic():
        seal.save()
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditSeal.objects.filter(pk=event.pk).delete()


def test_an_event_is_sealed_once():
    event = record_many(1)[0]
    audit_seal()
    # A second seal for the same event, or a second event at a taken position: refused.
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditSeal.objects.create(event_id=event.pk, seq=2, prev_hash=chain.GENESIS, hash="b" * 64, sealed_at=timezone.now())
    other = record_many(1)[0]
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditSeal.objects.create(event_id=other.pk, seq=1, prev_hash=chain.GENESIS, hash="c" * 64, sealed_at=timezone.now())
    assert audit_seal() == 1 and audit_verify().ok


def test_every_way_of_writing_an_event_queues_it():
    """The queue is filled by the database, so no writer can forget it: a model save, a
    bulk insert, the one-statement insert of ``audit_record_rows`` and a raw INSERT."""
    from audit.services import audit_record_many, audit_record_rows

    staff = get_user_model().objects.create_user("queued-by-bulk-insert")
    with transaction.atomic():
        saved = audit_record("market.created", target=("trading.market", 1))
        bulk = audit_record_many("admin.added", [staff], after={"n": 2})
        audit_record_rows("market.created", [(("trading.market", 3), None, {"n": 3}), (("trading.market", 4), 7, None)])
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO audit_auditevent (created_at, actor_type, actor_id, actor_label, action, target_type, "
                "target_id, outcome, reason, request_id) VALUES (%s, 'system', '', '', 'market.created', "
                "'trading.market', '5', 'success', '', '')",
                [timezone.now()],
            )
    assert AuditEvent.objects.count() == 5 and len(bulk) == 1 and saved.pk
    assert sorted(AuditPending.objects.values_list("event_id", flat=True)) == sorted(
        AuditEvent.objects.values_list("id", flat=True)
    )
    assert audit_seal() == 5 and audit_verify().ok and not AuditPending.objects.exists()


def test_a_rolled_back_event_leaves_nothing_on_the_queue():
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record("market.created", target=("trading.market", 1))
        raise RuntimeError("the change failed")
    assert not AuditEvent.objects.exists() and not AuditPending.objects.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the PL/pgSQL trigger is PostgreSQL's")
def test_postgresql_triggers_are_installed_and_raise_restrict_violation():
    event = record_many(1)[0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal "
                       "AND tgrelid = ANY('{audit_auditevent,audit_auditseal,audit_auditpending}'::regclass[]) ORDER BY 1, 2")
        assert cursor.fetchall() == [("audit_auditevent", "audit_event_append_only"),
                                     ("audit_auditevent", "audit_event_queue"),
                                     ("audit_auditseal", "audit_seal_append_only")]
    with pytest.raises(IntegrityError) as caught, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])
    assert caught.value.__cause__.sqlstate == "23001"


def test_guard_and_hash_cover_every_column():
    """A column added to AuditEvent must be hashed (the guard freezes every column); the seal
    table holds exactly the event's id and the seal."""
    columns = {field.column for field in AuditEvent._meta.concrete_fields}
    assert columns == set(chain.CONTENT_FIELDS)
    assert {field.column for field in AuditSeal._meta.concrete_fields} == {"event_id", *chain.SEAL_FIELDS}


# --- The hash itself (no database) -------------------------------------------------------


def _event(**overrides):
    base = {name: "" for name in chain.CONTENT_FIELDS}
    base.update(id=1, created_at=timezone.now(), account_id=None, before=None, after={"a": "1"}, source_ip=None)
    base.update(overrides)
    return SimpleNamespace(**base)


@pytest.mark.parametrize("field", [f for f in chain.CONTENT_FIELDS if f != "created_at"])
def test_hash_covers_each_content_field(field):
    event = _event()
    changed = _event(created_at=event.created_at, **{field: 2 if field in ("id", "account_id") else "changed"})
    assert chain.event_hash(event, 1, chain.GENESIS) != chain.event_hash(changed, 1, chain.GENESIS)


def test_hash_covers_time_position_and_predecessor():
    event = _event()
    digest = chain.event_hash(event, 1, chain.GENESIS)
    assert digest != chain.event_hash(_event(created_at=event.created_at + timezone.timedelta(microseconds=1)), 1, chain.GENESIS)
    assert digest != chain.event_hash(event, 2, chain.GENESIS)
    assert digest != chain.event_hash(event, 1, "1" * 64)
    assert digest == chain.event_hash(event, 1, chain.GENESIS)  # deterministic
