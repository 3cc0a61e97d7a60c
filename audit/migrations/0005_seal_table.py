"""The seal moves out of the event into a table of its own, and the sealer's work queue
becomes a table the database fills itself.

Sealing used to UPDATE the event: a new copy of the whole row (its ``before``/``after``
JSON included) and of all nine of its indexes, since a changed ``seq`` is never a HOT
update — a quarter of the write-ahead log per order. Now the sealer appends an
``audit_auditseal`` row (two index entries) and deletes the event's ``audit_auditpending``
row, and events are never updated at all: the guard refuses every UPDATE.

Existing seals are copied as they are (the chain and every hash are unchanged: the hash
covers the event's content and position, not where the seal is stored); unsealed events
are queued. Reversible: backwards, the seals are copied back into the columns and the first
guard (``_guard_v1``) is put back."""
from django.db import migrations, models
from django.db.models import Q

from . import _guard_v1

COPY_FORWARD = [
    "INSERT INTO audit_auditseal (event_id, seq, prev_hash, hash, sealed_at) "
    "SELECT id, seq, prev_hash, hash, COALESCE(sealed_at, created_at) FROM audit_auditevent WHERE seq IS NOT NULL",
    "INSERT INTO audit_auditpending (event_id) SELECT id FROM audit_auditevent WHERE seq IS NULL ORDER BY id",
]
COPY_BACK = [
    "UPDATE audit_auditevent SET seq = s.seq, prev_hash = s.prev_hash, hash = s.hash, sealed_at = s.sealed_at "
    "FROM audit_auditseal s WHERE s.event_id = audit_auditevent.id",
]


def copy_forward(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for statement in COPY_FORWARD:
            cursor.execute(statement)


def copy_back(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for statement in COPY_BACK:
            cursor.execute(statement)


def install(apps, schema_editor):
    from audit import triggers

    triggers.install(schema_editor.connection)


def uninstall(apps, schema_editor):
    from audit import triggers

    triggers.uninstall(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_no_pattern_indexes")]
    operations = [
        migrations.RunPython(_guard_v1.uninstall, _guard_v1.install),
        migrations.CreateModel(
            name="AuditSeal",
            fields=[
                ("event", models.OneToOneField(db_constraint=False, on_delete=models.DO_NOTHING, primary_key=True,
                                               related_name="seal", serialize=False, to="audit.auditevent")),
                ("seq", models.BigIntegerField(help_text="Position in the hash chain.", unique=True)),
                ("prev_hash", models.CharField(max_length=64)),
                ("hash", models.CharField(max_length=64)),
                ("sealed_at", models.DateTimeField()),
            ],
            options={"constraints": [models.CheckConstraint(condition=Q(seq__gt=0), name="audit_seal_seq_positive")]},
        ),
        migrations.CreateModel(
            name="AuditPending",
            fields=[
                ("event", models.OneToOneField(db_constraint=False, on_delete=models.DO_NOTHING, primary_key=True,
                                               related_name="pending", serialize=False, to="audit.auditevent")),
            ],
        ),
        migrations.RunPython(copy_forward, copy_back),
        migrations.RemoveConstraint(model_name="auditevent", name="audit_seal_all_or_nothing"),
        migrations.RemoveIndex(model_name="auditevent", name="audit_unsealed"),
        migrations.RemoveField(model_name="auditevent", name="seq"),
        migrations.RemoveField(model_name="auditevent", name="prev_hash"),
        migrations.RemoveField(model_name="auditevent", name="hash"),
        migrations.RemoveField(model_name="auditevent", name="sealed_at"),
        migrations.RunPython(install, uninstall),
    ]
