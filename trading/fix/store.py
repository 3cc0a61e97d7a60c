"""Persistence of FIX sessions: claiming a key's one live session, sequence numbers, and the
application messages sent (for ResendRequest).

Writes happen behind the socket: the gateway sends a message, then queues its record here;
``StoreWriter`` (one thread per gateway process) commits whatever is queued in one
transaction every few milliseconds. Sequence numbers and messages are therefore durable a
few milliseconds after they go out; a gateway killed inside that gap loses at most those
records, which a later ResendRequest answers with a SequenceReset-GapFill (the client can ask
OrderStatusRequest for the orders concerned). A clean session end flushes first.
"""
from __future__ import annotations

import logging
import queue
import threading
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.utils import timezone

from .models import FixMessage, FixSession

log = logging.getLogger("bourse.fix")

LEASE_S = 30  # a session renews its claim every LEASE_S / 3 seconds
FLUSH_INTERVAL_S = 0.005
# Outgoing numbers a session may use beyond what is durably recorded. Messages are recorded
# behind the socket; the reservation is durable ahead of them: a session extends it when half
# is used (the store commits every few ms, far sooner than 500 messages go out), so after a
# crash the next session starts past every number that can have been sent, never reusing one.
RESERVE = 1000


def session_claim(key, owner: str) -> FixSession | None:
    """Take the key's session for ``owner``; None when another live session holds it."""
    session, _ = FixSession.objects.get_or_create(key=key)
    now = timezone.now()
    taken = (
        FixSession.objects.filter(pk=session.pk)
        .filter(Q(owner="") | Q(lease_until__lt=now))
        .update(owner=owner, lease_until=now + timedelta(seconds=LEASE_S))
    )
    if taken != 1:
        return None
    # After a crash the recorded next number may be behind what was sent (records are written
    # just after the socket): start at the reservation instead. After a clean end it is 0.
    start = Greatest(F("next_out_seq"), F("next_out_reserved"))
    FixSession.objects.filter(pk=session.pk).update(next_out_seq=start, next_out_reserved=start + RESERVE)
    session.refresh_from_db()
    return session


def session_refusal_seq(key_id: str) -> int | None:
    """The MsgSeqNum for the Logout refusing a Logon whose signature verified (the key is
    revoked, expired, outside its allowlist, or lacks a scope): the
    key's real next outgoing number, taken (stored + 1) so the next session continues after
    it. None (the Logout says 1) while another session of the key is live — its numbers are
    not ours to take — or when the key never had a session."""
    with transaction.atomic(durable=True):
        session = FixSession.objects.select_for_update(of=("self",)).filter(key__key_id=key_id).first()
        if session is None:  # never logged on: its first number is 1, and nothing is created
            return None
        if session.owner and session.lease_until is not None and session.lease_until >= timezone.now():
            return None
        seq = session.next_out_seq
        FixSession.objects.filter(pk=session.pk).update(next_out_seq=seq + 1, updated_at=timezone.now())
        return seq


def session_renew(session_pk: int, owner: str) -> bool:
    return bool(
        FixSession.objects.filter(pk=session_pk, owner=owner).update(lease_until=timezone.now() + timedelta(seconds=LEASE_S))
    )


def session_release(session_pk: int, owner: str, *, flushed: bool = False) -> None:
    """Free the key's session. ``flushed``: every message sent is recorded, so the next
    session continues at the recorded number (otherwise at the reservation, past any gap)."""
    changes: dict[str, object] = {"owner": "", "lease_until": None}
    if flushed:
        changes["next_out_reserved"] = 0
    FixSession.objects.filter(pk=session_pk, owner=owner).update(**changes)


def session_set_cancel_on_disconnect(session_pk: int, value: bool) -> None:
    FixSession.objects.filter(pk=session_pk).update(cancel_on_disconnect=value)


def messages_between(session_pk: int, begin: int, end: int) -> list[FixMessage]:
    return list(FixMessage.objects.filter(session_id=session_pk, seq__gte=begin, seq__lte=end).order_by("seq"))


PRUNE_BATCH = 5000


def messages_prune(now: datetime | None = None) -> int:
    """Delete recorded messages sent more than ``BOURSE_FIX_STORE_RETENTION_S`` ago, in
    batches of ``PRUNE_BATCH`` rows (one short transaction each); return how many. A
    ResendRequest for a pruned range is answered with SequenceReset-GapFill, as for anything
    not stored. SendingTime (``YYYYMMDD-HH:MM:SS.sss``, UTC) sorts as it reads."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.BOURSE_FIX_STORE_RETENTION_S)
    before = cutoff.strftime("%Y%m%d-%H:%M:%S.") + f"{cutoff.microsecond // 1000:03d}"
    deleted = 0
    while True:
        with transaction.atomic(durable=True):
            ids = list(
                FixMessage.objects.filter(sending_time__lt=before).order_by("sending_time").values_list("id", flat=True)[:PRUNE_BATCH]
            )
            if not ids:
                return deleted
            deleted += FixMessage.objects.filter(pk__in=ids).delete()[0]


class StoreWriter:
    """Commits queued store records in batches, on its own thread and connection."""

    def __init__(self):
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="fix-store", daemon=True)
        self._stopping = False
        self.lost = False
        self._thread.start()

    def message(self, session_pk: int, seq: int, msg_type: str, sending_time: str, body: str) -> None:
        self._queue.put(("msg", session_pk, seq, msg_type, sending_time, body))

    def sequences(self, session_pk: int, next_out: int, next_in: int) -> None:
        self._queue.put(("seq", session_pk, next_out, next_in))

    def reserve(self, session_pk: int, next_out_reserved: int) -> None:
        """Record that numbers below ``next_out_reserved`` may be used (see ``RESERVE``)."""
        self._queue.put(("reserve", session_pk, next_out_reserved))

    def reset(self, session_pk: int) -> None:
        """Forget the session's stored messages (ResetSeqNumFlag)."""
        self._queue.put(("reset", session_pk))

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything queued so far is committed (call from a worker thread);
        False on timeout, or when a write failed since this process started (records lost)."""
        done = threading.Event()
        self._queue.put(("barrier", done))
        return done.wait(timeout) and not self.lost

    def stop(self) -> None:
        self.flush()
        self._stopping = True
        self._queue.put(("stop",))
        self._thread.join(timeout=5)

    def _run(self):
        while True:
            items = [self._queue.get()]
            try:
                while len(items) < 5000:
                    items.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            barriers = [item[1] for item in items if item[0] == "barrier"]
            try:
                self._write(items)
            except Exception:
                log.exception("FIX store write failed; %d records lost", len(items))
                self.lost = True  # sessions then end without clearing their reservation
                close_old_connections()
            for done in barriers:
                done.set()
            if any(item[0] == "stop" for item in items):
                connection.close()
                return
            if not barriers:
                threading.Event().wait(FLUSH_INTERVAL_S)  # let a batch accumulate

    def _write(self, items):
        messages: list[FixMessage] = []
        sequences: dict[int, tuple[int, int]] = {}
        reserved: dict[int, int] = {}
        with transaction.atomic():
            for item in items:
                kind = item[0]
                if kind == "msg":
                    _, session_pk, seq, msg_type, sending_time, body = item
                    messages.append(FixMessage(session_id=session_pk, seq=seq, msg_type=msg_type, sending_time=sending_time, body=body))
                elif kind == "seq":
                    sequences[item[1]] = (item[2], item[3])
                elif kind == "reserve":
                    reserved[item[1]] = item[2]
                elif kind == "reset":
                    self._save(messages)
                    messages = []
                    FixMessage.objects.filter(session_id=item[1]).delete()
            self._save(messages)
            for session_pk, value in reserved.items():
                FixSession.objects.filter(pk=session_pk).update(next_out_reserved=value)
            for session_pk, (next_out, next_in) in sequences.items():
                FixSession.objects.filter(pk=session_pk).update(next_out_seq=next_out, next_in_seq=next_in, updated_at=timezone.now())

    @staticmethod
    def _save(messages):
        if messages:
            # A resent message keeps its number; a reused number after a reset replaces nothing.
            FixMessage.objects.bulk_create(messages, ignore_conflicts=True, batch_size=500)


def new_owner_token() -> str:
    return uuid.uuid4().hex
