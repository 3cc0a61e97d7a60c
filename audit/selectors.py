"""Reading the audit trail: verifying the chain, and the queries the console shows."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Min

from . import chain
from .models import AuditEvent

CHUNK = 2000


@dataclass(frozen=True)
class BrokenLink:
    seq: int
    event_id: int | None
    problem: str


@dataclass(frozen=True)
class VerifyReport:
    checked: int
    head_seq: int
    head_hash: str
    unsealed: int
    oldest_unsealed_id: int | None
    broken: BrokenLink | None

    @property
    def ok(self) -> bool:
        return self.broken is None

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "unsealed": self.unsealed,
            "oldest_unsealed_id": self.oldest_unsealed_id,
            "broken": None
            if self.broken is None
            else {"seq": self.broken.seq, "event_id": self.broken.event_id, "problem": self.broken.problem},
        }


def audit_verify(*, anchors: dict[int, str] | None = None, progress: Callable[[int], None] | None = None) -> VerifyReport:
    """Walk the sealed events in chain order, recompute every hash, and report the first
    broken link: a missing position (an event deleted), a ``prev_hash`` that is not its
    predecessor's hash (events reordered or replaced), or a hash that does not match the
    event's content (an event altered). ``anchors`` maps chain positions to hashes recorded
    elsewhere earlier (e.g. from a previous run's head); each must still match, which also
    catches a trail cut short or rebuilt from scratch. Read-only."""
    anchors = dict(anchors or {})
    expected_seq, prev_hash, checked = 1, chain.GENESIS, 0
    broken = None
    sealed = AuditEvent.objects.filter(seq__isnull=False).order_by("seq")
    last_seq = 0
    while broken is None:
        batch = list(sealed.filter(seq__gt=last_seq)[:CHUNK])
        if not batch:
            break
        for event in batch:
            if event.seq != expected_seq:
                assert event.seq is not None  # only sealed events are read
                broken = BrokenLink(
                    expected_seq, None, f"event(s) at positions {expected_seq}..{event.seq - 1} are missing (deleted)"
                )
                break
            if event.prev_hash != prev_hash:
                broken = BrokenLink(event.seq, event.pk, "prev_hash is not the previous event's hash (reordered or replaced)")
                break
            if chain.event_hash(event, event.seq, event.prev_hash) != event.hash:
                broken = BrokenLink(event.seq, event.pk, "hash does not match the event's contents (altered after sealing)")
                break
            if event.seq in anchors and anchors.pop(event.seq) != event.hash:
                broken = BrokenLink(event.seq, event.pk, "hash differs from the recorded anchor (the chain was rebuilt)")
                break
            prev_hash, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
        tail_seq = batch[-1].seq
        assert tail_seq is not None  # only sealed events are read
        last_seq = tail_seq
        if progress is not None:
            progress(checked)
    if broken is None and anchors:
        missing = min(anchors)
        broken = BrokenLink(missing, None, "an anchored position is past the end of the chain (the trail was cut short)")
    unsealed = AuditEvent.objects.filter(seq__isnull=True).aggregate(n=Min("id"))
    return VerifyReport(
        checked=checked,
        head_seq=expected_seq - 1,
        head_hash=prev_hash,
        unsealed=AuditEvent.objects.filter(seq__isnull=True).count(),
        oldest_unsealed_id=unsealed["n"],
        broken=broken,
    )


def audit_event_count() -> int:
    """How many events are sealed (what ``audit_verify`` will walk)."""
    return AuditEvent.objects.filter(seq__isnull=False).count()


def audit_events_for_account(account_id: int, *, limit: int = 50):
    """The latest events concerning one trading account, newest first."""
    return AuditEvent.objects.filter(account_id=account_id).order_by("-id")[:limit]
