"""The audit trail: append-only events, sealed into a hash chain after they commit.

An ``AuditEvent`` is written by the service that makes a change, inside the same
transaction. A trigger of the database itself queues it for sealing (an ``AuditPending``
row, written by the same statement). A single sealer later gives committed events their
chain position and hash by appending an ``AuditSeal`` row and removing the queue row (see
``audit.services.audit_seal``). Database triggers (``audit.triggers``) refuse every UPDATE
and DELETE of an event and of a seal.

The seal is a row of its own, not columns of the event: an UPDATE of the event would write
a whole new copy of it and of every one of its indexes (a changed ``seq`` is never a HOT
update), at the order rate; appending a narrow seal writes one small row and two index
entries.

``account_id`` is a plain column, not a foreign key: the trail must outlive and never
block changes to the rows it talks about, and it is the index behind each account's
history in the console.
"""
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ActorKind(models.TextChoices):
    USER = "user", "Console user"
    APIKEY = "apikey", "API key"
    SYSTEM = "system", "System"
    ANONYMOUS = "anonymous", "Unauthenticated"


class Outcome(models.TextChoices):
    SUCCESS = "success", "Success"
    REFUSED = "refused", "Refused"


class AuditEvent(models.Model):
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor_type = models.CharField(max_length=10, choices=ActorKind.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=150, blank=True, help_text="Username or key id at the time.")
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True, help_text="app_label.model, or a kind such as source_ip.")
    target_id = models.CharField(max_length=64, blank=True)
    account_id = models.BigIntegerField(null=True, blank=True, help_text="The trading account concerned, if any.")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, default=Outcome.SUCCESS)
    reason = models.TextField(blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("export_auditevent", "Can export audit events as CSV")]
        # One row per order at the order rate: each index here is written by the order's
        # insert (the event is never updated: its seal is a row of ``AuditSeal``).
        # ``action`` and ``request_id`` are found by equality (the console's filter and links):
        # plain indexes, not ``db_index``, which on PostgreSQL adds a second,
        # ``varchar_pattern_ops`` copy for LIKE that nothing here runs (migration 0004).
        indexes = [
            models.Index(fields=["action"], name="audit_action"),
            models.Index(fields=["request_id"], name="audit_request_id"),
            models.Index(fields=["account_id", "id"], name="audit_account_id"),
            models.Index(fields=["target_type", "target_id"], name="audit_target"),
            models.Index(fields=["actor_type", "actor_id"], name="audit_actor"),
        ]

    def __str__(self):
        return f"{self.action} {self.target_type}:{self.target_id} by {self.actor_label or self.actor_type}"

    @property
    def actor_display(self) -> str:
        return f"{self.get_actor_type_display()}: {self.actor_label}" if self.actor_label else self.get_actor_type_display()

    @property
    def target_display(self) -> str:
        return f"{self.target_type}:{self.target_id}" if self.target_type else ""

    # The seal, read through: None until the sealer has chained the event (select_related
    # ``seal`` where many events are shown).
    def _seal_value(self, name: str):
        try:
            return getattr(self.seal, name)
        except AuditSeal.DoesNotExist:
            return None

    @property
    def seq(self) -> int | None:
        return self._seal_value("seq")

    @property
    def prev_hash(self) -> str | None:
        return self._seal_value("prev_hash")

    @property
    def hash(self) -> str | None:
        return self._seal_value("hash")

    @property
    def sealed_at(self):
        return self._seal_value("sealed_at")


class AuditSeal(models.Model):
    """An event's place in the hash chain: appended once by the sealer after the event
    committed, never changed (``audit.triggers``). ``hash`` = H(``prev_hash``, the event's
    content and ``seq``) — ``audit.chain``.

    ``event`` is the event's id without a foreign-key constraint: a constraint would lock
    the event row (``FOR KEY SHARE``) on every seal, and ``audit_verify`` reports a seal
    whose event has gone, which is what a constraint would have prevented only for callers
    that respect it."""

    event = models.OneToOneField(
        AuditEvent, primary_key=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="seal"
    )
    seq = models.BigIntegerField(unique=True, help_text="Position in the hash chain.")
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    sealed_at = models.DateTimeField()

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(seq__gt=0), name="audit_seal_seq_positive")]

    def __str__(self):
        return f"{self.seq}:{self.hash}"


class AuditPending(models.Model):
    """The sealer's work queue: one row per committed event not sealed yet, written by a
    trigger on the events table in the statement that inserts the event (no writer can
    forget it) and deleted by the seal that chains it. Small: events are sealed within
    moments of their commit."""

    event = models.OneToOneField(
        AuditEvent, primary_key=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="pending"
    )

    def __str__(self):
        return str(self.event_id)


class AuthFailureWindow(models.Model):
    """A (channel, source, window) whose authentication failures (or, for the channels of
    ``audit.services.AGGREGATED_REFUSALS``, refusals of one account with one error code,
    source ``<account id>:<code>``) went past the number recorded one by one. The rest are
    only counted (in the cache); the periodic flush
    writes one summary event per row when its window has closed, then deletes the row.
    Bounded: at most one row per source per window, and only for sources that flood."""

    channel = models.CharField(max_length=8)
    source_ip = models.CharField(max_length=45)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "source_ip", "window_start"], name="authfailure_one_per_window")
        ]

    def __str__(self):
        return f"{self.channel} {self.source_ip} {self.window_start:%Y-%m-%d %H:%M:%S}"
