"""The FIX 4.4 acceptor: one asyncio task per TCP connection, one live session per API key.

Threads: the event loop owns the sockets and all session state; Django work (the logon
check, order services, store reads) runs on a small thread pool (``Gateway.call``), each
session's application messages one at a time and in sequence order, so a cancel never
overtakes the order it cancels. Outgoing messages are written the moment they are built
and recorded by ``store.StoreWriter`` behind them.

Execution reports come from the outbox the engine writes in each batch (``OutboxTail``): one
tail per process reads the ``orders``/``fills`` events of the accounts with a live session,
woken by the engine's verdict signal (``trading.notify``), with a slow re-check besides. So
a session sees its account's orders whichever transport entered them, and nothing else.
"""
from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from django.db import close_old_connections, connections
from django.db.models import Max, Q
from django.utils import timezone as dj_timezone

from exchange import errors, wire
from exchange.syntax import MAX_ID_DIGITS, ascii_digits
from trading import notify
from trading.models import OutboxEvent
from trading.services import order_cancel_all

from . import application, reports, store
from .codec import FieldError, FrameReader, Message, encode, encode_fields
from .logon import format_utc_timestamp, logon_verify, parse_utc_timestamp

log = logging.getLogger("bourse.fix")

TARGET = "BOURSE"
SESSION_MESSAGES = {"0", "1", "2", "3", "4", "5", "A"}
MAX_HEARTBEAT_S = 300
SENDING_TIME_ACCURACY_S = 120
LOGON_TIMEOUT_S = 10
MAX_QUEUED = 10_000  # messages held while a gap is being resent
_SEQ = re.compile(rb"\x0134=([0-9]{1,18})\x01")
_test_ids = itertools.count(1)


def _now_fix() -> str:
    return format_utc_timestamp(datetime.now(timezone.utc))


class SessionClosed(Exception):
    pass


class Session:
    """One connection: logon, sequence numbers, heartbeats, and the application messages."""

    def __init__(self, gateway: "Gateway", reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.gateway = gateway
        self.reader, self.writer = reader, writer
        peer = writer.get_extra_info("peername") or ("", 0)
        self.source_ip = peer[0] if peer else None
        self.frames = FrameReader()
        self.key = None
        self.account = None
        self.store_pk = None
        self.owner = store.new_owner_token()
        self.next_out = 1
        self.next_in = 1
        self.heartbeat = 30
        self.cancel_on_disconnect = False
        self.logged_on = False
        self.logout_sent = False
        self.closing = False
        self.last_recv = self.last_sent = time.monotonic()
        self.test_request: tuple[str, float] | None = None
        self.queued: dict[int, Message] = {}
        self.resend_requested = False
        self.cancel_ids: dict[str, str] = {}
        self.min_event_id = 0
        self.timer: asyncio.Task | None = None
        self.inflight: set[asyncio.Task] = set()
        self.acked: set[str] = set()  # live orders reported as New
        self.logon_at = ""  # wire timestamp; orders created since then get a New report

    # --- sending -------------------------------------------------------------------------

    def _write(self, raw: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(raw)
        self.last_sent = time.monotonic()

    def send(self, msg_type: str, fields, *, extra_header=()) -> int:
        """Send with the next MsgSeqNum; application messages are recorded for replay."""
        seq = self.next_out
        self.next_out += 1
        sending_time = _now_fix()
        header = [(49, TARGET), (56, self.key.key_id), (34, seq), (52, sending_time), *extra_header]
        body = encode_fields(fields)
        self._write(encode(msg_type, header, body))
        writer = self.gateway.store
        if msg_type not in SESSION_MESSAGES:
            writer.message(self.store_pk, seq, msg_type, sending_time, body.decode("latin-1"))
        writer.sequences(self.store_pk, self.next_out, self.next_in)
        return seq

    def send_reports(self, messages) -> None:
        for msg_type, fields in messages:
            self.send(msg_type, fields)

    def _send_unsessioned(self, msg_type: str, fields, target: str | None) -> None:
        """Before a session exists (a refused Logon): MsgSeqNum 1, nothing recorded, so a
        stranger cannot move a key's sequence numbers."""
        header = [(49, TARGET), (56, target or "UNKNOWN"), (34, 1), (52, _now_fix())]
        self._write(encode(msg_type, header, fields))

    def reject(self, ref_seq: int | None, error: FieldError, ref_msg_type: str | None = None) -> None:
        self.send("3", [(45, ref_seq if ref_seq is not None else 0), (371, error.tag), (372, ref_msg_type),
                        (373, error.reason), (58, error.text)])

    async def logout(self, text: str) -> None:
        """Send Logout (with ``text``) and close the connection."""
        if not self.logout_sent and not self.writer.is_closing():
            self.logout_sent = True
            if self.logged_on:
                self.send("5", [(58, text)])
            else:
                self._send_unsessioned("5", [(58, text)], getattr(self, "claimed_sender", None))
        raise SessionClosed(text)

    # --- the connection ------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._read_loop()
        except SessionClosed as closed:
            log.info("FIX session closed: %s", closed, extra={"key_id": getattr(self.key, "key_id", None)})
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("FIX session failed")
        finally:
            await self._end()

    async def _read_loop(self) -> None:
        logon_deadline = time.monotonic() + LOGON_TIMEOUT_S
        while not self.closing:
            timeout = max(0.0, logon_deadline - time.monotonic()) if not self.logged_on else None
            try:
                data = await asyncio.wait_for(self.reader.read(65536), timeout)
            except asyncio.TimeoutError:
                await self.logout(f"No Logon within {LOGON_TIMEOUT_S} s.")
            if not data:
                return
            self.last_recv = time.monotonic()
            for frame in self.frames.feed(data):
                if frame.fatal is not None:
                    await self.logout(f"Garbled stream: {frame.fatal}")
                await self._frame(frame)

    async def _frame(self, frame) -> None:
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
        try:
            key = await self.gateway.call(
                logon_verify, sender=message.get(49), target=message.get(56), seq=seq_text,
                sending_time=message.get(52), raw_data=message.get(96), source_ip=self.source_ip,
            )
        except errors.BourseError as error:
            await self.logout(f"{error.code}: {error}")
        if key.key_id in self.gateway.live_keys:
            await self.logout(f"session_active: a FIX session for key {key.key_id} is already logged on.")
        claimed = await self.gateway.call(store.session_claim, key, self.owner)
        if claimed is None:
            await self.logout(f"session_active: a FIX session for key {key.key_id} is already logged on.")
        self.key, self.account, self.store_pk = key, key.account, claimed.pk
        self.gateway.live_keys[key.key_id] = self
        self.next_out, self.next_in = claimed.next_out_seq, claimed.next_in_seq
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
        self.logged_on = True
        # Reports start with what the engine commits from now on (older state: H or REST).
        self.min_event_id = await self.gateway.call(OutboxTail.top_id)
        self.logon_at = wire.timestamp(dj_timezone.now())
        self.gateway.register(self)
        self.send("A", [(98, "0"), (108, self.heartbeat), (141, "Y" if reset else None)])
        if seq > self.next_in and not reset:
            self._request_resend()  # the Logon's own number is inside the gap the client fills
        else:
            self.next_in = seq + 1
            self.gateway.store.sequences(self.store_pk, self.next_out, self.next_in)
        self.timer = asyncio.create_task(self._timer())
        log.info("FIX logon", extra={"key_id": key.key_id, "source_ip": self.source_ip})

    # --- session layer -------------------------------------------------------------------

    def _request_resend(self) -> None:
        if not self.resend_requested:
            self.resend_requested = True
            self.send("2", [(7, self.next_in), (16, 0)])

    async def _sequenced(self, message: Message) -> None:
        if not await self._header_ok(message):
            return
        seq = int(message.get(34))
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
                message.answered = True  # ... and only counted when its turn comes
            if len(self.queued) >= MAX_QUEUED:
                await self.logout("Too many messages held while waiting for a resend.")
            self.queued[seq] = message
            self._request_resend()
            return
        if seq < self.next_in:
            if message.get(43) == "Y":
                return  # a duplicate of something already processed
            await self.logout(f"MsgSeqNum too low, expecting {self.next_in} but received {seq}.")
        await self._process(message)
        while self.next_in in self.queued:
            await self._process(self.queued.pop(self.next_in))
        if not self.queued:
            self.resend_requested = False
        self.gateway.store.sequences(self.store_pk, self.next_out, self.next_in)

    async def _header_ok(self, message: Message) -> bool:
        """Check the standard header; False when the message was rejected (and its number
        consumed when it was the expected one)."""
        seq = message.get(34)
        if not ascii_digits(seq, MAX_ID_DIGITS):
            await self.logout("MsgSeqNum(34) missing or not a number.")
        seq = int(seq)
        if message.get(49) != self.key.key_id or message.get(56) != TARGET:
            self.reject(seq, FieldError("CompID problem", 9, 49 if message.get(49) != self.key.key_id else 56), message.msg_type)
            await self.logout("SenderCompID/TargetCompID do not match this session.")
        sent = parse_utc_timestamp(message.get(52) or "")
        problem = None
        if sent is None:
            problem = FieldError("SendingTime(52) missing or not a UTCTimestamp", 1 if 52 not in message else 6, 52)
        elif message.get(43) == "Y" and 122 not in message and message.msg_type != "4":
            problem = FieldError("OrigSendingTime(122) required when PossDupFlag=Y", 1, 122)
        elif message.get(43) != "Y" and abs((datetime.now(timezone.utc) - sent).total_seconds()) > SENDING_TIME_ACCURACY_S:
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
        seq = int(message.get(34))
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
            if not getattr(message, "answered", False):
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
            task = asyncio.create_task(self._application(message, seq))
            self.inflight.add(task)
            task.add_done_callback(self.inflight.discard)
        elif msg_type in application.HANDLERS:
            await self._drain_inflight()
            await self._application(message, seq)
        else:
            self.send("j", [(45, seq), (372, msg_type), (380, "3"), (58, f"Unsupported message type {msg_type}")])

    async def _drain_inflight(self) -> None:
        if self.inflight:
            await asyncio.wait(set(self.inflight))

    async def _application(self, message: Message, seq: int) -> None:
        handler = application.HANDLERS[message.msg_type]
        try:
            outcome = await self.gateway.call(handler, self.account, message, self.cancel_ids)
        except FieldError as error:
            self.reject(seq, error, message.msg_type)
            return
        except Exception:
            log.exception("FIX %s failed", message.msg_type)
            self.send("j", [(45, seq), (372, message.msg_type), (380, "0"), (58, "internal_error: the request failed; retry later")])
            return
        self.send_reports(outcome.messages)

    async def _sequence_reset(self, message: Message, gap_fill: bool) -> None:
        new = message.get(36)
        seq = int(message.get(34))
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
        if not gap_fill:
            while self.next_in in self.queued:
                await self._process(self.queued.pop(self.next_in))
            self.gateway.store.sequences(self.store_pk, self.next_out, self.next_in)

    async def _resend(self, message: Message) -> None:
        """Answer a ResendRequest: replay stored application messages with PossDupFlag=Y,
        gap-fill session messages and anything not stored."""
        begin, end = message.get(7), message.get(16)
        if not (ascii_digits(begin, MAX_ID_DIGITS) and ascii_digits(end, MAX_ID_DIGITS)):
            self.reject(int(message.get(34)), FieldError("BeginSeqNo(7)/EndSeqNo(16) missing or not numbers", 1, 7), "2")
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
            header = [(49, TARGET), (56, self.key.key_id), (34, record.seq), (43, "Y"), (52, _now_fix()), (122, record.sending_time)]
            self._write(encode(record.msg_type, header, record.body.encode("latin-1")))
            cursor = record.seq + 1
        if cursor <= last:
            self._gap_fill(cursor, last + 1)

    def _gap_fill(self, seq: int, new_seq: int) -> None:
        header = [(49, TARGET), (56, self.key.key_id), (34, seq), (43, "Y"), (52, _now_fix()), (122, _now_fix())]
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
                        log.warning("FIX session lease lost", extra={"key_id": self.key.key_id})
        except (ConnectionError, asyncio.CancelledError):
            pass

    async def _end(self) -> None:
        """Release the session (cancel on disconnect, flush the store, free the key), and
        only then close the socket, so a client that reconnects at once finds the key free."""
        self.closing = True
        if self.timer is not None:
            self.timer.cancel()
        try:
            await self._drain_inflight()
            if self.store_pk is not None and self.key is not None:
                self.gateway.unregister(self)
                try:
                    if self.cancel_on_disconnect and self.logged_on:
                        cancelled = await self.gateway.call(order_cancel_all, account=self.account)
                        log.info("FIX cancel on disconnect: %d orders", len(cancelled), extra={"key_id": self.key.key_id})
                    await self.gateway.call(self.gateway.store.flush)
                finally:
                    await self.gateway.call(store.session_release, self.store_pk, self.owner)
        finally:
            try:
                await self.writer.drain()
            except Exception:
                pass
            self.writer.close()


class _Wake(notify.VerdictWaiter):
    """The engine's verdict signal, as a wake-up for the outbox tail."""

    def __init__(self, callback):
        self._callback = callback
        super().__init__()

    def _deliver(self, payload: str) -> None:
        self._callback()


class OutboxTail:
    """Reads the ``orders``/``fills`` outbox events of accounts with a live session.

    One engine owns a market and commits its batches one after another, so within a market
    the event ids become visible in increasing order: a floor per market is exact. A market
    that has been quiet keeps a floor that follows the highest id seen a few seconds ago
    (a batch is never in flight that long), so the query stays a short range scan.
    """

    SETTLE_S = 5.0
    POLL_S = 0.25

    def __init__(self, gateway: "Gateway"):
        self.gateway = gateway
        self.floors: dict[int, int] = {}
        self.default_floor = 0
        self.high_water = 0
        self.samples: list[tuple[float, int]] = []
        self.wake = asyncio.Event()

    @staticmethod
    def top_id() -> int:
        return OutboxEvent.objects.aggregate(top=Max("id"))["top"] or 0

    def _fetch(self, accounts, floors, default_floor):
        condition = Q(id__gt=default_floor) & ~Q(market_id__in=list(floors))
        for market_id, floor in floors.items():
            condition |= Q(market_id=market_id, id__gt=floor)
        return list(
            OutboxEvent.objects.filter(condition, channel__in=("orders", "fills"), account_id__in=accounts)
            .order_by("id").values("id", "market_id", "account_id", "channel", "payload")
        )

    async def run(self) -> None:
        self.default_floor = self.high_water = await self.gateway.call(self.top_id)
        loop = asyncio.get_running_loop()
        self.waker = await self.gateway.call(_Wake, lambda: loop.call_soon_threadsafe(self.wake.set))
        while True:
            try:
                await asyncio.wait_for(self.wake.wait(), self.POLL_S)
            except asyncio.TimeoutError:
                pass
            self.wake.clear()
            try:
                while await self._poll():
                    pass
            except Exception:
                log.exception("FIX outbox tail failed; retrying")
                await asyncio.sleep(0.5)

    def _batches(self, events):
        """Split the events into engine batches per (market, account), in id order.

        A batch writes its ``orders`` events (each order at most once) and then its
        ``fills``, contiguously; so an order event after a fill, or an order seen twice,
        starts the next batch. Two batches without fills may merge, which changes nothing:
        each order's report depends only on its own event and its own fills.
        """
        current: dict[tuple, dict] = {}
        for event in events:
            self.floors[event["market_id"]] = max(self.floors.get(event["market_id"], 0), event["id"])
            self.high_water = max(self.high_water, event["id"])
            key = (event["market_id"], event["account_id"])
            batch = current.get(key)
            payload = event["payload"]
            if event["channel"] == "orders" and batch is not None and (
                batch["fills"] or payload["order_id"] in batch["order_ids"]
            ):
                yield key[1], batch
                batch = None
            if batch is None:
                batch = current[key] = {"orders": [], "fills": [], "order_ids": set(), "first": event["id"]}
            batch[event["channel"]].append(payload)
            if event["channel"] == "orders":
                batch["order_ids"].add(payload["order_id"])
        # the last batch of each stream is complete: a batch commits (and shows) whole
        for key, batch in sorted(current.items(), key=lambda item: item[1]["first"]):
            yield key[1], batch

    async def _poll(self) -> bool:
        """Deliver what is new. No row limit: a batch must be read whole, and the backlog
        is bounded by what the engine commits between two polls."""
        now = time.monotonic()
        accounts = list(self.gateway.by_account)
        settled = max((mark for at, mark in self.samples if now - at >= self.SETTLE_S), default=None)
        self.samples = [(at, mark) for at, mark in self.samples if now - at < self.SETTLE_S] + (
            [(now, self.high_water)] if not self.samples or self.samples[-1][1] != self.high_water else []
        )
        if settled is not None:
            self.default_floor = max(self.default_floor, settled)
            for market_id in self.floors:
                self.floors[market_id] = max(self.floors[market_id], settled)
        if not accounts:
            top = await self.gateway.call(self.top_id)
            self.default_floor = self.high_water = max(self.high_water, top)
            self.floors = {}
            return False
        events = await self.gateway.call(self._fetch, accounts, dict(self.floors), self.default_floor)
        for account_id, batch in self._batches(events):
            for session in list(self.gateway.by_account.get(account_id, ())):
                if batch["first"] <= session.min_event_id or session.closing:
                    continue
                try:
                    session.send_reports(reports.batch_reports(batch["orders"], batch["fills"], account_id=account_id,
                                                               cancel_ids=session.cancel_ids, acked=session.acked,
                                                               since=session.logon_at))
                except Exception:
                    log.exception("FIX execution reports failed", extra={"key_id": session.key.key_id})
        return False


class Gateway:
    def __init__(self, host: str, port: int, *, workers: int = 8, pipeline: int = 1):
        self.host, self.port = host, port
        self.pipeline = max(1, pipeline)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fix-db")
        self.store = store.StoreWriter()
        self.live_keys: dict[str, Session] = {}
        self.by_account: dict[int, set[Session]] = {}
        self.sessions: set[Session] = set()
        self.tail = OutboxTail(self)
        self.server: asyncio.base_events.Server | None = None

    async def call(self, fn, *args, **kwargs):
        """Run Django code on the pool (a thread keeps its connection between calls)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(_db_call, fn, *args, **kwargs))

    def register(self, session: Session) -> None:
        self.by_account.setdefault(session.account.pk, set()).add(session)
        self.tail.wake.set()

    def unregister(self, session: Session) -> None:
        if self.live_keys.get(session.key.key_id) is session:
            del self.live_keys[session.key.key_id]
        sessions = self.by_account.get(session.account.pk)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self.by_account[session.account.pk]

    async def _connection(self, reader, writer) -> None:
        session = Session(self, reader, writer)
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._connection, self.host, self.port, limit=1 << 20)
        self.port = self.server.sockets[0].getsockname()[1]
        self.tail_task = asyncio.create_task(self.tail.run())

    async def stop(self) -> None:
        """Log every session out, flush the store, stop."""
        if self.server is not None:
            self.server.close()
        for session in list(self.sessions):
            if session.logged_on and not session.logout_sent:
                session.logout_sent = True
                session.send("5", [(58, "Gateway shutting down.")])
            session.reader.feed_eof()
        for _ in range(50):
            if not self.sessions:
                break
            await asyncio.sleep(0.1)
        self.tail_task.cancel()
        await self.call(self.store.flush)
        waker = getattr(self.tail, "waker", None)
        if waker is not None:
            waker._stopping.set()
        self.pool.submit(_close_connections).result(timeout=5)
        self.pool.shutdown(wait=True, cancel_futures=True)


def _db_call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception:
        close_old_connections()  # a broken connection is replaced on this thread's next call
        raise


def _close_connections():
    connections.close_all()
