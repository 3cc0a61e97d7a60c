"""One FIX 4.4 session: Logon, sequence numbers, heartbeats, resends, and the application
messages handed to ``application``.

A ``Session`` lives on the gateway's event loop and owns its connection's state; the Django
work it needs (the logon check, order services, the session store) runs on the server's
thread pool through ``SessionHost.call``. Outgoing messages are written the moment they are
built and recorded by ``store.StoreWriter`` behind them.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from django.conf import settings
from django.utils import timezone as dj_timezone

from apikeys.verifier import audit_refusal
from exchange import errors, metrics, wire
from exchange.syntax import MAX_ID_DIGITS, ascii_digits
from trading.outbox import selectors as outbox
from trading.services import order_cancel_all

from . import application, proxy, store
from .codec import FieldError, FrameReader, Message, encode, encode_fields
from .logon import format_utc_timestamp, logon_verify, parse_utc_timestamp

if TYPE_CHECKING:
    from accounts.models import Account
    from apikeys.models import ApiKey

log = logging.getLogger("bourse.fix")
# MsgTypes counted by name in bourse_fix_messages_total; any other is counted as "other", so
# a client cannot grow the label set.
_COUNTED_TYPES = frozenset({"0", "1", "2", "3", "4", "5", "8", "9", "A", "D", "F", "G", "H", "j", "q", "r"})


def _count(direction: str, msg_type: str | None) -> None:
    metrics.FIX_MESSAGES.labels(direction, msg_type if msg_type in _COUNTED_TYPES else "other").inc()

TARGET = "BOURSE"
SESSION_MESSAGES = {"0", "1", "2", "3", "4", "5", "A"}
MAX_HEARTBEAT_S = 300
SENDING_TIME_ACCURACY_S = 120
LOGON_TIMEOUT_S = 10
MAX_QUEUED = 10_000  # messages held while a gap is being resent
_SEQ = re.compile(rb"\x0134=([0-9]{1,18})\x01")
_test_ids = itertools.count(1)


def _now_fix() -> str:
    return format_utc_timestamp(datetime.now(UTC))


def _seq_num(message: Message) -> int:
    """The MsgSeqNum of a message whose header ``Session._header_ok`` accepted (34 is digits)."""
    seq = message.get(34)
    if seq is None:
        raise ValueError("MsgSeqNum(34) missing from a message that passed the header checks")
    return int(seq)


class SessionClosed(Exception):
    pass


# Source address -> (start of its log interval, connections refused since, not logged).
_refusals: dict[str, tuple[float, int]] = {}
_REFUSALS_MAX_SOURCES = 10_000


def _log_refusal(source_ip: str | None, reason: str) -> None:
    """Log a connection refused before Logon once per source per interval: a scanner or a
    misconfigured client opening connection after connection cannot flood the log. The next
    line after an interval says how many were not logged."""
    now = time.monotonic()
    key = source_ip or "?"
    started, suppressed = _refusals.get(key, (None, 0))
    if started is not None and now - started < settings.BOURSE_FIX_REFUSAL_LOG_INTERVAL_S:
        _refusals[key] = (started, suppressed + 1)
        return
    if len(_refusals) >= _REFUSALS_MAX_SOURCES:
        _refusals.clear()
    _refusals[key] = (now, 0)
    log.info("FIX connection refused before logon: %s", reason,
             extra={"source_ip": source_ip, "not_logged_since": suppressed,
                    "interval_s": settings.BOURSE_FIX_REFUSAL_LOG_INTERVAL_S})


class SessionHost(Protocol):
    """What a session needs from the server that accepted it."""

    pipeline: int
    store: store.StoreWriter
    live_keys: dict[str, Session]

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...

    def register(self, session: Session) -> None: ...

    def unregister(self, session: Session) -> None: ...

    live: Any  # apikeys.live.LiveSessions: sessions follow their key


class Session:
    """One connection: logon, sequence numbers, heartbeats, and the application messages."""

    def __init__(self, gateway: SessionHost, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.gateway = gateway
        self.reader, self.writer = reader, writer
        peer = writer.get_extra_info("peername") or ("", 0)
        self.source_ip = peer[0] if peer else None
        self.frames = FrameReader()
        self._early = b""  # FIX bytes read along with a PROXY header
        self.claimed_sender: str | None = None  # SenderCompID of the Logon, before it is verified
        # Set by a verified Logon (see ``verified_key`` and friends for the logged-on reads).
        self.key: ApiKey | None = None
        self.account: Account | None = None
        self.store_pk: int | None = None
        self.owner = store.new_owner_token()
        self.next_out = 1
        self.out_reserved = 0  # see store.RESERVE
        self.next_in = 1
        self.heartbeat = 30
        self.cancel_on_disconnect = False
        self.pending_new = False  # 8014 at Logon: a Pending New report answers each order written
        # ClOrdID -> the reader's reports held back while a NewOrderSingle with it is being
        # submitted (only with ``pending_new``), so its Pending New goes out before them.
        self.submitting: dict[str, list[tuple[str, list]]] = {}
        self.submitting_count: dict[str, int] = {}
        self.logged_on = False
        self.logout_sent = False
        self.closing = False
        self.last_recv = self.last_sent = time.monotonic()
        self.test_request: tuple[str, float] | None = None
        self.queued: dict[int, Message] = {}
        self.queued_bytes = 0  # their raw size: bounded as well as their number
        self.resend_requested = False
        self.resends_answered: set[int] = set()  # ResendRequests answered across a gap
        self.cancel_ids: dict[str, str] = {}
        self.replace_ids: dict[str, tuple] = {}  # order id -> (ClOrdID, OrigClOrdID, price, quantity)
        self.min_event_id = 0
        self.timer: asyncio.Task | None = None
        self.inflight: set[asyncio.Task] = set()
        self.acked: set[str] = set()  # live orders reported as New
        self.logon_at = ""  # wire timestamp; orders created since then get a New report
        # For apikeys.live: the key this session logged on with, and the scope it needs.
        self.key_id: str | None = None
        self.required_scope = "trade"

    # --- the logged-on state --------------------------------------------------------------

    @property
    def verified_key(self) -> ApiKey:
        """The key the Logon verified (everything that sends in sequence runs after it)."""
        if self.key is None:
            raise RuntimeError("FIX session used before its Logon was verified")
        return self.key

    @property
    def verified_account(self) -> Account:
        if self.account is None:
            raise RuntimeError("FIX session used before its Logon was verified")
        return self.account

    @property
    def store_id(self) -> int:
        """The primary key of the session-store row the Logon claimed."""
        if self.store_pk is None:
            raise RuntimeError("FIX session used before its Logon was verified")
        return self.store_pk

    # --- sending -------------------------------------------------------------------------

    def _write(self, raw: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(raw)
        self.last_sent = time.monotonic()

    def send(self, msg_type: str, fields, *, extra_header=()) -> int:
        """Send with the next MsgSeqNum; application messages are recorded for replay."""
        seq = self.next_out
        self.next_out += 1
        if self.store_pk is not None and self.next_out > self.out_reserved - store.RESERVE // 2:
            # keep the durable reservation well ahead of the numbers going out (store.RESERVE)
            self.out_reserved = self.next_out + store.RESERVE
            self.gateway.store.reserve(self.store_pk, self.out_reserved)
        sending_time = _now_fix()
        header = [(49, TARGET), (56, self.verified_key.key_id), (34, seq), (52, sending_time), *extra_header]
        body = encode_fields(fields)
        self._write(encode(msg_type, header, body))
        _count("out", msg_type)
        writer = self.gateway.store
        if msg_type not in SESSION_MESSAGES:
            writer.message(self.store_id, seq, msg_type, sending_time, body.decode("latin-1"))
        writer.sequences(self.store_id, self.next_out, self.next_in)
        return seq

    def send_reports(self, messages) -> None:
        if self.closing:
            return  # ended (by its key, a Logout): nothing more is delivered
        for msg_type, fields in messages:
            self.send(msg_type, fields)

    def deliver_reports(self, messages) -> None:
        """The reader's reports: those of an order whose NewOrderSingle is still being
        submitted on this session wait for its Pending New (the engine can commit the order's
        batch before the submitting thread hands its answer back to this loop)."""
        if not self.submitting:
            self.send_reports(messages)
            return
        now = []
        for message in messages:
            held = None
            for tag, value in message[1]:
                if tag in (11, 41) and value in self.submitting:
                    held = self.submitting[value]
                    break
            if held is None:
                now.append(message)
            else:
                held.append(message)
        self.send_reports(now)

    def _submitting(self, cl_ord_id: str | None) -> bool:
        if not self.pending_new or not cl_ord_id:
            return False
        self.submitting.setdefault(cl_ord_id, [])
        self.submitting_count[cl_ord_id] = self.submitting_count.get(cl_ord_id, 0) + 1
        return True

    def _submitted(self, cl_ord_id: str) -> None:
        """The submission's own answer has been sent: release what the reader held for it."""
        left = self.submitting_count[cl_ord_id] - 1
        if left:
            self.submitting_count[cl_ord_id] = left
            return
        del self.submitting_count[cl_ord_id]
        self.send_reports(self.submitting.pop(cl_ord_id))

    def _send_unsessioned(self, msg_type: str, fields, target: str | None, seq: int = 1) -> None:
        """Before a session exists (a refused Logon): MsgSeqNum 1 unless the key verified
        (``seq``: its real next number), nothing recorded, so a stranger cannot move a key's
        sequence numbers."""
        header = [(49, TARGET), (56, target or "UNKNOWN"), (34, seq), (52, _now_fix())]
        self._write(encode(msg_type, header, fields))

    def reject(self, ref_seq: int | None, error: FieldError, ref_msg_type: str | None = None) -> None:
        self.send("3", [(45, ref_seq if ref_seq is not None else 0), (371, error.tag), (372, ref_msg_type),
                        (373, error.reason), (58, error.text)])

    async def logout(self, text: str, *, refused_key_id: str | None = None) -> NoReturn:
        """Send Logout (with ``text``) and close the connection. ``refused_key_id``: a Logon
        refused after its signature verified, whose Logout carries the key's real next
        outgoing MsgSeqNum (``store.session_refusal_seq``)."""
        if not self.logout_sent and not self.writer.is_closing():
            self.logout_sent = True
            if self.logged_on:
                self.send("5", [(58, text)])
            else:
                seq = None
                if refused_key_id is not None:
                    try:
                        seq = await self.gateway.call(store.session_refusal_seq, refused_key_id)
                    except Exception:  # noqa: BLE001 -- the refusal goes out regardless
                        log.warning("could not take the refused key's MsgSeqNum", exc_info=True)
                self._send_unsessioned("5", [(58, text)], self.claimed_sender, seq or 1)
        raise SessionClosed(text)

    # --- the connection ------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._proxy_header()
            await self._read_loop()
        except SessionClosed as closed:
            if self.logged_on:
                log.info("FIX session closed: %s", closed, extra={"key_id": self.verified_key.key_id})
            else:
                _log_refusal(self.source_ip, str(closed))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("FIX session failed")
        finally:
            await self._end()

    async def _proxy_header(self) -> None:
        """A PROXY protocol header (v1 or v2) from a trusted proxy gives the client's real
        address (``trading.fix.proxy``); its bytes never reach the FIX parser."""
        try:
            address, self._early = await asyncio.wait_for(
                proxy.read_header(self.reader, self.source_ip), LOGON_TIMEOUT_S)
        except TimeoutError:
            await self.logout(f"No Logon within {LOGON_TIMEOUT_S} s.")
        except proxy.ProxyHeaderError as error:
            log.warning("FIX connection refused: %s", error, extra={"source_ip": self.source_ip})
            await self.logout(f"Refused: {error}.")
        if address is not None:
            log.info("FIX connection through a proxy", extra={"proxy_ip": self.source_ip, "source_ip": address})
            self.source_ip = address

    async def _read_loop(self) -> None:
        logon_deadline = time.monotonic() + LOGON_TIMEOUT_S
        while not self.closing:
            timeout = max(0.0, logon_deadline - time.monotonic()) if not self.logged_on else None
            try:
                if self._early:
                    data, self._early = self._early, b""  # read with the PROXY header
                else:
                    data = await asyncio.wait_for(self.reader.read(65536), timeout)
            except TimeoutError:
                await self.logout(f"No Logon within {LOGON_TIMEOUT_S} s.")
            if not data:
                return
            self.last_recv = time.monotonic()
            for frame in self.frames.feed(data):
                if self.closing:
                    return  # ended by its key meanwhile: nothing more is accepted
                if frame.fatal is not None:
                    await self.logout(f"Garbled stream: {frame.fatal}")
                await self._frame(frame)

    async def _frame(self, frame) -> None:
        _count("in", frame.message.msg_type if frame.error is None else "garbled")
        if frame.error is not None:
            seq_match = _SEQ.search(frame.raw)
            if not self.logged_on:
                await self.logout(f"Malformed message before Logon: {frame.error.text}")
            seq = int(seq_match.group(1)) if seq_match else None
            if frame.error.reason != 99 and seq == self.next_in:
                self.next_in += 1  # a framed message with bad fields still used its number
            self.reject(seq, frame.error)
            return
        message = frame.message
        if not self.logged_on:
            await self._logon(message)
            return
        await self._sequenced(message)

    # --- logon ---------------------------------------------------------------------------

    async def _logon(self, message: Message) -> None:
        self.claimed_sender = message.get(49)
        if message.msg_type != "A":
            await self.logout("The first message must be Logon (35=A).")
        for tag in (49, 56, 34, 52, 98, 108):
            if tag not in message:
                await self.logout(f"Logon refused: required tag {tag} missing.")
        if message.get(56) != TARGET:
            await self.logout(f"Logon refused: TargetCompID(56) must be {TARGET}.")
        seq_text, hb = message.get(34), message.get(108)
        if not ascii_digits(seq_text, MAX_ID_DIGITS) or int(seq_text) < 1:
            await self.logout("Logon refused: MsgSeqNum(34) must be a positive integer.")
        if not ascii_digits(hb, 6) or not 1 <= int(hb) <= MAX_HEARTBEAT_S:
            await self.logout(f"Logon refused: HeartBtInt(108) must be 1-{MAX_HEARTBEAT_S} seconds.")
        if message.get(98) != "0":
            await self.logout("Logon refused: EncryptMethod(98) must be 0 (none).")
        if 96 in message and message.get(95) is None:
            await self.logout("Logon refused: RawDataLength(95) must precede RawData(96).")
        cod = message.get(8013)
        if cod is not None and cod not in ("Y", "N"):
            await self.logout("Logon refused: CancelOnDisconnect(8013) must be Y or N.")
        pending_new = message.get(8014)
        if pending_new is not None and pending_new not in ("Y", "N"):
            await self.logout("Logon refused: PendingNewReports(8014) must be Y or N.")
        try:
            key = await self.gateway.call(
                logon_verify, sender=message.get(49), target=message.get(56), seq=seq_text,
                sending_time=message.get(52), raw_data=message.get(96), source_ip=self.source_ip,
            )
        except errors.BourseError as error:
            # These come only after the signature verified on a fresh Logon: the sender holds
            # the key (not nonce_reused: a captured Logon replayed by anyone).
            verified = isinstance(error, (errors.KeyRevoked, errors.KeyExpired, errors.IpNotAllowed,
                                          errors.PermissionDenied))
            await self.logout(f"{error.code}: {error}", refused_key_id=message.get(49) if verified else None)
        if key.key_id in self.gateway.live_keys:
            await self._session_active(key)
        claimed = await self.gateway.call(store.session_claim, key, self.owner)
        if claimed is None:
            await self._session_active(key)
        self.key, self.account, self.store_pk = key, key.account, claimed.pk
        self.gateway.live_keys[key.key_id] = self
        self.next_out, self.next_in = claimed.next_out_seq, claimed.next_in_seq
        self.out_reserved = claimed.next_out_reserved
        self.heartbeat = int(hb)
        seq = int(seq_text)
        reset = message.get(141) == "Y"
        if reset:
            self.next_out, self.next_in = 1, 1
            self.gateway.store.reset(self.store_pk)
        elif seq < self.next_in:
            self.logged_on = True  # the Logout goes out in sequence
            await self.logout(f"MsgSeqNum too low, expecting {self.next_in} but received {seq}.")
        if cod is not None:
            self.cancel_on_disconnect = cod == "Y"
            await self.gateway.call(store.session_set_cancel_on_disconnect, self.store_pk, self.cancel_on_disconnect)
        else:
            self.cancel_on_disconnect = claimed.cancel_on_disconnect
        self.pending_new = pending_new == "Y"
        self.logged_on = True
        # Reports start with what the engine commits from now on (older state: H or REST).
        self.min_event_id = await self.gateway.call(outbox.latest_event_id)
        self.logon_at = wire.timestamp(dj_timezone.now())
        self.gateway.register(self)
        self.send("A", [(98, "0"), (108, self.heartbeat), (141, "Y" if reset else None)])
        if seq > self.next_in and not reset:
            self._request_resend()  # the Logon's own number is inside the gap the client fills
        else:
            self.next_in = seq + 1
            self.gateway.store.sequences(self.store_pk, self.next_out, self.next_in)
        self.timer = asyncio.create_task(self._timer())
        self.key_id = key.key_id
        self.gateway.live.add(self, key)
        log.info("FIX logon", extra={"key_id": key.key_id, "source_ip": self.source_ip})

    async def _session_active(self, key) -> None:
        error = errors.SessionActive(f"a FIX session for key {key.key_id} is already logged on.")
        await self.gateway.call(audit_refusal, error, channel="fix", source_ip=self.source_ip, key_id=key.key_id)
        await self.logout(f"{error.code}: {error}")

    # --- session layer -------------------------------------------------------------------

    def _request_resend(self) -> None:
        if not self.resend_requested:
            self.resend_requested = True
            self.send("2", [(7, self.next_in), (16, 0)])

    async def _sequenced(self, message: Message) -> None:
        if not await self._header_ok(message):
            return
        seq = _seq_num(message)
        msg_type = message.msg_type
        if msg_type == "4" and message.get(123) != "Y":
            await self._sequence_reset(message, gap_fill=False)
            return
        if seq > self.next_in:
            if msg_type == "5":
                await self._process(message)
                return
            if msg_type == "2":
                await self._resend(message)  # answered at once, even across a gap ...
                self.resends_answered.add(seq)  # ... and only counted when its turn comes
            if len(self.queued) >= MAX_QUEUED or self.queued_bytes + len(message.raw) > settings.BOURSE_FIX_MAX_QUEUED_BYTES:
                await self.logout("Too many messages held while waiting for a resend "
                                  f"(at most {MAX_QUEUED} and {settings.BOURSE_FIX_MAX_QUEUED_BYTES} bytes).")
            if seq in self.queued:
                self.queued_bytes -= len(self.queued[seq].raw)
            self.queued[seq] = message
            self.queued_bytes += len(message.raw)
            self._request_resend()
            return
        if seq < self.next_in:
            if message.get(43) == "Y":
                return  # a duplicate of something already processed
            await self.logout(f"MsgSeqNum too low, expecting {self.next_in} but received {seq}.")
        await self._process(message)
        while self.next_in in self.queued:
            await self._process(self._unqueue(self.next_in))
        if not self.queued:
            self.resend_requested = False
        self.gateway.store.sequences(self.store_id, self.next_out, self.next_in)

    async def _header_ok(self, message: Message) -> bool:
        """Check the standard header; False when the message was rejected (and its number
        consumed when it was the expected one)."""
        seq_text = message.get(34)
        if not ascii_digits(seq_text, MAX_ID_DIGITS):
            await self.logout("MsgSeqNum(34) missing or not a number.")
        seq = int(seq_text)
        if message.get(49) != self.verified_key.key_id or message.get(56) != TARGET:
            self.reject(seq, FieldError("CompID problem", 9, 49 if message.get(49) != self.verified_key.key_id else 56), message.msg_type)
            await self.logout("SenderCompID/TargetCompID do not match this session.")
        sent = parse_utc_timestamp(message.get(52) or "")
        problem = None
        if sent is None:
            problem = FieldError("SendingTime(52) missing or not a UTCTimestamp", 1 if 52 not in message else 6, 52)
        elif message.get(43) == "Y" and 122 not in message and message.msg_type != "4":
            problem = FieldError("OrigSendingTime(122) required when PossDupFlag=Y", 1, 122)
        elif message.get(43) != "Y" and abs((datetime.now(UTC) - sent).total_seconds()) > SENDING_TIME_ACCURACY_S:
            self.reject(seq, FieldError("SendingTime accuracy problem", 10, 52), message.msg_type)
            await self.logout(f"SendingTime(52) is more than {SENDING_TIME_ACCURACY_S} s from server time.")
        if problem is not None:
            if seq == self.next_in:
                self.next_in += 1
            self.reject(seq, problem, message.msg_type)
            return False
        return True

    async def _process(self, message: Message) -> None:
        """Handle the message numbered ``next_in``."""
        seq = _seq_num(message)
        msg_type = message.msg_type
        if msg_type == "4":
            await self._sequence_reset(message, gap_fill=True)
            return
        self.next_in = seq + 1
        if msg_type == "0":
            if self.test_request and message.get(112) == self.test_request[0]:
                self.test_request = None
        elif msg_type == "1":
            if 112 not in message:
                self.reject(seq, FieldError("Required tag 112 missing", 1, 112), msg_type)
            else:
                self.send("0", [(112, message.get(112))])
        elif msg_type == "2":
            if seq in self.resends_answered:
                self.resends_answered.discard(seq)
            else:
                await self._resend(message)
        elif msg_type == "3":
            log.info("FIX client rejected our message %s: %s", message.get(45), message.get(58))
        elif msg_type == "5":
            if not self.logout_sent:
                self.logout_sent = True
                self.send("5", [])
            raise SessionClosed("client logout")
        elif msg_type == "A":
            self.reject(seq, FieldError("Already logged on", 99), msg_type)
        elif msg_type == "D" and self.gateway.pipeline > 1:
            # Up to ``pipeline`` orders are submitted at once (the service, not the gateway,
            # bounds one session's rate); everything else waits for them, so a cancel or a
            # status request never overtakes an order sent before it.
            while len(self.inflight) >= self.gateway.pipeline:
                await asyncio.wait(self.inflight, return_when=asyncio.FIRST_COMPLETED)
            task = asyncio.create_task(self._application(message, seq, msg_type))
            self.inflight.add(task)
            task.add_done_callback(self.inflight.discard)
        elif msg_type in application.HANDLERS:
            await self._drain_inflight()
            await self._application(message, seq, msg_type)
        else:
            self.send("j", [(45, seq), (372, msg_type), (380, "3"), (58, f"Unsupported message type {msg_type}")])

    def _unqueue(self, seq: int) -> Message:
        message = self.queued.pop(seq)
        self.queued_bytes -= len(message.raw)
        return message

    async def _drain_inflight(self) -> None:
        if self.inflight:
            await asyncio.wait(set(self.inflight))

    async def _application(self, message: Message, seq: int, msg_type: str) -> None:
        if self.closing:
            return  # ended (by its key): nothing more is accepted
        cl_ord_id = message.get(11) if msg_type == "D" else None
        if not self._submitting(cl_ord_id):
            await self._handle(message, seq)
            return
        assert cl_ord_id is not None  # _submitting is False without one
        try:
            await self._handle(message, seq)
        finally:
            self._submitted(cl_ord_id)

    async def _handle(self, message: Message, seq: int) -> None:
        try:
            outcome = await self.gateway.call(
                application.application_handle, self.verified_key.key_id, self.account, message, self.cancel_ids,
                self.replace_ids, pending_new=self.pending_new)
        except FieldError as error:
            self.reject(seq, error, message.msg_type)
            return
        except Exception as exc:
            if errors.dependency_failure(exc) is not None:  # as REST's 503: nothing was changed, retry
                log.warning("FIX %s failed: dependency unavailable", message.msg_type)
                text = "service_unavailable: a dependency is not reachable; nothing was changed, retry shortly"
            else:
                log.exception("FIX %s failed", message.msg_type)
                text = "internal_error: the request failed; retry later"
            self.send("j", [(45, seq), (372, message.msg_type), (380, "0"), (58, text)])
            return
        self.send_reports(outcome.messages)

    async def _sequence_reset(self, message: Message, gap_fill: bool) -> None:
        new = message.get(36)
        seq = _seq_num(message)
        if not ascii_digits(new, MAX_ID_DIGITS):
            if gap_fill:
                self.next_in = seq + 1
            self.reject(seq, FieldError("NewSeqNo(36) missing or not a number", 1 if new is None else 6, 36), "4")
            return
        new_seq = int(new)
        if new_seq < self.next_in or (gap_fill and new_seq <= seq):
            self.reject(seq, FieldError(f"NewSeqNo {new_seq} is below the expected {self.next_in}", 5, 36), "4")
            if gap_fill:
                self.next_in = max(self.next_in, seq + 1)
            return
        self.next_in = new_seq
        self.queued = {k: v for k, v in self.queued.items() if k >= new_seq}
        self.queued_bytes = sum(len(m.raw) for m in self.queued.values())
        if not gap_fill:
            while self.next_in in self.queued:
                await self._process(self._unqueue(self.next_in))
            self.gateway.store.sequences(self.store_id, self.next_out, self.next_in)

    async def _resend(self, message: Message) -> None:
        """Answer a ResendRequest: replay stored application messages with PossDupFlag=Y,
        gap-fill session messages and anything not stored."""
        begin, end = message.get(7), message.get(16)
        if not (ascii_digits(begin, MAX_ID_DIGITS) and ascii_digits(end, MAX_ID_DIGITS)):
            self.reject(_seq_num(message), FieldError("BeginSeqNo(7)/EndSeqNo(16) missing or not numbers", 1, 7), "2")
            return
        first, last = int(begin), int(end)
        top = self.next_out - 1
        if last == 0 or last > top:
            last = top
        if first < 1 or first > last:
            return
        await self.gateway.call(self.gateway.store.flush)
        stored = await self.gateway.call(store.messages_between, self.store_pk, first, last)
        cursor = first
        for record in stored:
            if record.seq > cursor:
                self._gap_fill(cursor, record.seq)
            key_id = self.verified_key.key_id
            header = [(49, TARGET), (56, key_id), (34, record.seq), (43, "Y"), (52, _now_fix()), (122, record.sending_time)]
            self._write(encode(record.msg_type, header, record.body.encode("latin-1")))
            cursor = record.seq + 1
        if cursor <= last:
            self._gap_fill(cursor, last + 1)

    def _gap_fill(self, seq: int, new_seq: int) -> None:
        header = [(49, TARGET), (56, self.verified_key.key_id), (34, seq), (43, "Y"), (52, _now_fix()), (122, _now_fix())]
        self._write(encode("4", header, [(123, "Y"), (36, new_seq)]))

    async def _timer(self) -> None:
        """Heartbeats out, TestRequest when the client is quiet, Logout when it stays so."""
        renew_every = store.LEASE_S / 3
        last_renew = time.monotonic()
        try:
            while not self.closing:
                await asyncio.sleep(min(0.25, self.heartbeat / 4))
                now = time.monotonic()
                if now - self.last_sent >= self.heartbeat:
                    self.send("0", [])
                if self.test_request is not None and self.last_recv > self.test_request[1]:
                    self.test_request = None  # anything received shows the client is alive
                if self.test_request is not None:
                    if now - self.test_request[1] >= self.heartbeat:
                        self.closing = True
                        self.logout_sent = True
                        self.send("5", [(58, f"Heartbeat timeout: nothing received for {now - self.last_recv:.1f} s.")])
                        self.reader.feed_eof()  # the read loop ends; _end releases, then closes
                        return
                elif now - self.last_recv >= self.heartbeat * 1.2:
                    test_id = f"TEST-{next(_test_ids)}"
                    self.test_request = (test_id, now)
                    self.send("1", [(112, test_id)])
                if now - last_renew >= renew_every:
                    last_renew = now
                    if not await self.gateway.call(store.session_renew, self.store_pk, self.owner):
                        log.warning("FIX session lease lost", extra={"key_id": self.verified_key.key_id})
        except (ConnectionError, asyncio.CancelledError):
            pass

    async def end_for_key(self, error) -> None:
        """The key may no longer be used (``apikeys.live``): stop delivering reports and
        accepting messages at once, send Logout with ``Text`` = ``code: reason``, and end
        the session (cancel on disconnect applies, as for any disconnect)."""
        if self.closing:
            return
        self.closing = True
        self.gateway.unregister(self)  # no more execution reports
        if self.logged_on and not self.logout_sent and not self.writer.is_closing():
            self.logout_sent = True
            self.send("5", [(58, f"{error.code}: {error}")])
        self.reader.feed_eof()  # the read loop ends; _end releases, then closes

    async def _end(self) -> None:
        """Release the session (cancel on disconnect, flush the store, free the key), and
        only then close the socket, so a client that reconnects at once finds the key free."""
        self.closing = True
        flushed = False
        if self.timer is not None:
            self.timer.cancel()
        try:
            await self._drain_inflight()
            if self.key_id is not None:
                self.gateway.live.discard(self)
            if self.store_pk is not None and self.key is not None:
                self.gateway.unregister(self)
                try:
                    if self.cancel_on_disconnect and self.logged_on:
                        cancelled = await self.gateway.call(order_cancel_all, account=self.account, reason="disconnect")
                        log.info("FIX cancel on disconnect: %d orders", len(cancelled), extra={"key_id": self.verified_key.key_id})
                    flushed = await self.gateway.call(self.gateway.store.flush)
                finally:
                    await self.gateway.call(store.session_release, self.store_pk, self.owner, flushed=flushed)
        finally:
            try:
                await self.writer.drain()
            except Exception:  # noqa: BLE001 -- the peer may be gone in any way; we close regardless
                pass
            self.writer.close()
