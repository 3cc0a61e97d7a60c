"""Reading the audit trail: verifying the chain, and the queries the console shows."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Count, Min

from . import chain
from .models import AuditEvent, AuditSeal

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
    stranded: int = 0  # unsealed events missing from the sealer's queue: they would never be sealed

    @property
    def ok(self) -> bool:
        return self.broken is None and not self.stranded

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "unsealed": self.unsealed,
            "oldest_unsealed_id": self.oldest_unsealed_id,
            "stranded": self.stranded,
            "broken": None
            if self.broken is None
            else {"seq": self.broken.seq, "event_id": self.broken.event_id, "problem": self.broken.problem},
        }


def _first_break(row: tuple, expected_seq: int, prev_hash: str) -> BrokenLink | None:
    seq, event_id, seal_prev_hash, seal_hash, *content = row
    if seq != expected_seq:
        return _gap(expected_seq, seq)
    if seal_prev_hash != prev_hash:
        return BrokenLink(seq, event_id, "prev_hash is not the previous event's hash (reordered or replaced)")
    if chain.content_hash(content, seq, seal_prev_hash) != seal_hash:
        return BrokenLink(seq, event_id, "hash does not match the event's contents (altered after sealing)")
    return None


def _gap(expected_seq: int, next_seq: int) -> BrokenLink:
    """Positions the join skipped, ``expected_seq`` up to ``next_seq`` (the next one it
    found): the first one's seal was deleted, or its event was — the seal is still there and
    names it."""
    orphan = AuditSeal.objects.filter(seq=expected_seq).values_list("event_id", flat=True).first()
    if orphan is not None:
        return BrokenLink(expected_seq, orphan, "the event sealed at this position is missing (deleted)")
    return BrokenLink(expected_seq, None, f"event(s) at positions {expected_seq}..{next_seq - 1} are missing (deleted)")


def _sealed_rows(after_seq: int) -> list[tuple]:
    """The seals at the next ``CHUNK`` chain positions, each with its event's content: one
    query, read as tuples (seq, event id, prev_hash, hash, *content in
    ``chain.CONTENT_FIELDS`` order). A seal whose event is gone is left out by the join; the
    gap it leaves is looked into. The positions are a closed range, not "the next CHUNK
    seals": the planner then knows how few rows the chunk holds and joins each to its event by
    primary key (with "> n ORDER BY seq LIMIT" and no statistics it hashed the whole trail for
    every chunk)."""
    return list(
        AuditSeal.objects.filter(seq__gt=after_seq, seq__lte=after_seq + CHUNK)
        .order_by("seq")
        .values_list("seq", "event_id", "prev_hash", "hash", *(f"event__{name}" for name in chain.CONTENT_FIELDS))
    )


def audit_verify(*, anchors: dict[int, str] | None = None, progress: Callable[[int], None] | None = None) -> VerifyReport:
    """Walk the seals in chain order, recompute every hash from its event, and report the
    first broken link: a missing position (a seal deleted), a sealed event that is gone, a
    ``prev_hash`` that is not its predecessor's hash (events reordered or replaced), or a
    hash that does not match the event's content (an event altered). ``anchors`` maps chain
    positions to hashes recorded elsewhere earlier (e.g. from a previous run's head); each
    must still match, which also catches a trail cut short or rebuilt from scratch. Also
    counts the events not sealed yet, and those of them missing from the sealer's queue
    (``stranded``: a queue row deleted by hand; ``ok`` is false). Read-only."""
    anchors = dict(anchors or {})
    expected_seq, prev_hash, checked = 1, chain.GENESIS, 0
    broken = None
    last_seq = 0
    while broken is None:
        rows = _sealed_rows(last_seq)
        if not rows:
            break
        for row in rows:
            broken = _first_break(row, expected_seq, prev_hash)
            seq, event_id, _, seal_hash = row[:4]
            if broken is None and seq in anchors and anchors.pop(seq) != seal_hash:
                broken = BrokenLink(seq, event_id, "hash differs from the recorded anchor (the chain was rebuilt)")
            if broken is not None:
                break
            prev_hash, expected_seq, checked = seal_hash, expected_seq + 1, checked + 1
        last_seq += CHUNK
        if progress is not None:
            progress(checked)
    if broken is None:
        # Seals past the last position the walk found (their events gone, or a whole chunk's
        # seals): the chain does not end there.
        following = AuditSeal.objects.filter(seq__gte=expected_seq).order_by("seq").values_list("seq", flat=True).first()
        if following is not None:
            broken = _gap(expected_seq, following)
    if broken is None and anchors:
        missing = min(anchors)
        broken = BrokenLink(missing, None, "an anchored position is past the end of the chain (the trail was cut short)")
    unsealed = AuditEvent.objects.filter(seal__isnull=True)
    summary = unsealed.aggregate(n=Count("id"), oldest=Min("id"))
    return VerifyReport(
        checked=checked,
        head_seq=expected_seq - 1,
        head_hash=prev_hash,
        unsealed=summary["n"],
        oldest_unsealed_id=summary["oldest"],
        broken=broken,
        stranded=unsealed.filter(pending__isnull=True).count() if summary["n"] else 0,
    )


def audit_event_count() -> int:
    """How many events are sealed (what ``audit_verify`` will walk)."""
    return AuditSeal.objects.count()


def audit_events_for_account(account_id: int, *, limit: int = 50):
    """The latest events concerning one trading account, newest first."""
    return AuditEvent.objects.filter(account_id=account_id).order_by("-id")[:limit]
