"""Migration 0005 moves the seal out of the event without changing the chain: seals made
while they were columns verify afterwards, unsealed events are queued, and backwards the
columns come back filled."""
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from audit import chain
from audit.models import AuditEvent, AuditPending, AuditSeal
from audit.selectors import audit_verify
from audit.services import audit_seal

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE, AFTER = [("audit", "0004_no_pattern_indexes")], [("audit", "0005_seal_table")]
CONTENT = ("created_at", "actor_type", "actor_id", "actor_label", "action", "target_type", "target_id", "outcome",
           "reason", "request_id")


def _migrate(target) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target)


def _columns(table: str) -> set[str]:
    with connection.cursor() as cursor:
        return {column.name for column in connection.introspection.get_table_description(cursor, table)}


def test_seals_written_as_columns_verify_after_the_move_and_come_back_when_reversed():
    _migrate(BEFORE)
    try:
        now = timezone.now()
        prev = chain.GENESIS
        with connection.cursor() as cursor:
            for i in range(4):
                values = [now, "system", "", "", "market.created", "trading.market", str(i), "success", "", ""]
                cursor.execute(f"INSERT INTO audit_auditevent ({', '.join(CONTENT)}) "
                               f"VALUES ({', '.join(['%s'] * len(CONTENT))})", values)
            cursor.execute("SELECT id FROM audit_auditevent ORDER BY id")
            ids = [row[0] for row in cursor.fetchall()]
            for seq, pk in enumerate(ids[:3], start=1):  # the last one stays unsealed
                event = AuditEvent(pk=pk, created_at=now, actor_type="system", action="market.created",
                                   target_type="trading.market", target_id=str(seq - 1), outcome="success")
                digest = chain.event_hash(event, seq, prev)
                cursor.execute("UPDATE audit_auditevent SET seq = %s, prev_hash = %s, hash = %s, sealed_at = %s "
                               "WHERE id = %s", [seq, prev, digest, now, pk])  # the first guard allows this write
                prev = digest
        head = prev

        _migrate(AFTER)

        assert "seq" not in _columns("audit_auditevent")
        assert list(AuditSeal.objects.order_by("seq").values_list("event_id", flat=True)) == ids[:3]
        assert list(AuditPending.objects.values_list("event_id", flat=True)) == [ids[3]]
        report = audit_verify(anchors={3: head})
        assert report.ok and report.checked == 3 and report.unsealed == 1
        assert audit_seal() == 1 and audit_verify(anchors={3: head}).ok

        _migrate(BEFORE)

        assert {"seq", "prev_hash", "hash", "sealed_at"} <= _columns("audit_auditevent")
        with connection.cursor() as cursor:
            cursor.execute("SELECT seq FROM audit_auditevent ORDER BY id")
            assert [row[0] for row in cursor.fetchall()] == [1, 2, 3, 4]
            cursor.execute("SELECT hash FROM audit_auditevent WHERE seq = 3")
            assert cursor.fetchone()[0] == head
    finally:
        _migrate(AFTER)
    assert audit_verify(anchors={3: head}).ok
