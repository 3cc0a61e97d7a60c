"""Helpers for the FIX tests: the gateway and engine as child processes on the test
database, a raw socket client (exact bytes, for the session-layer edge cases) and a QuickFIX
initiator (the off-the-shelf engine integrators use)."""
from __future__ import annotations

import gc
import queue
import re
import socket
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from apikeys import signing
from tests.support import PYTHON, subprocess_env
from trading.fix.codec import FrameReader, Message, encode
from trading.fix.logon import format_utc_timestamp, signed_string

ROOT_DIR = Path(__file__).resolve().parents[2]


def wait_for(predicate, timeout=10.0, interval=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


class Processes:
    """An engine for the given markets and a gateway on a free port, stopped by ``stop()``.

    The gateway's port is read from its start-up line ``FIX gateway listening on HOST:PORT``,
    an INFO log line: the children log at INFO at least whatever LOG_LEVEL the caller runs
    with (a bench run with LOG_LEVEL=WARNING would otherwise wait for a line that never
    comes). Start-up fails with the children's output after ``start_timeout`` seconds or
    as soon as the gateway exits. Both children's output is drained continuously (a full
    pipe would block a child) and kept for ``output()`` and ``stop()``."""

    def __init__(self, markets=("BTC-USD",), start_timeout: float = 60.0, **env_extra):
        env = {**subprocess_env(), **env_extra}
        if env.get("LOG_LEVEL", "INFO").upper() not in ("DEBUG", "INFO"):
            env["LOG_LEVEL"] = "INFO"
        self.engine = subprocess.Popen([PYTHON, "manage.py", "run_engine", "--markets", ",".join(markets)],
                                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.gateway = subprocess.Popen([PYTHON, "manage.py", "run_fix_gateway", "--port", "0"],
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.gateway_output: list[str] = []
        self.engine_output: list[str] = []
        self.port = 0
        listening = threading.Event()
        self._drains = [threading.Thread(target=self._drain, args=(self.gateway, self.gateway_output, listening), daemon=True),
                        threading.Thread(target=self._drain, args=(self.engine, self.engine_output, None), daemon=True)]
        for thread in self._drains:
            thread.start()
        deadline = time.monotonic() + start_timeout
        while not listening.wait(0.1):
            if self.gateway.poll() is not None or time.monotonic() > deadline:
                listening.wait(0.5)  # the last lines of a gateway that just exited
                reason = (f"exited with code {self.gateway.returncode}" if self.gateway.poll() is not None
                          else f"printed no 'FIX gateway listening on' line within {start_timeout:g} s")
                output = self.stop()
                raise RuntimeError(f"FIX gateway did not start: {reason}; output of the gateway and the engine:\n{output}")

    def _drain(self, process, lines: list[str], listening: threading.Event | None):
        for raw in process.stdout:
            line = raw.decode(errors="replace")
            lines.append(line)
            if listening is not None and not listening.is_set():
                match = re.search(r"FIX gateway listening on [0-9.]+:([0-9]+)", line)
                if match:
                    self.port = int(match.group(1))
                    listening.set()

    def output(self) -> str:
        return "".join(self.gateway_output)

    def stop(self) -> str:
        for process in (self.gateway, self.engine):
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for thread in self._drains:
            thread.join(timeout=5)  # until the drains have read what the children wrote last
        return self.output() + "".join(self.engine_output)


def logon_signature(key, sending_time: str, seq: int | str, target: str = "BOURSE") -> str:
    message = signed_string(sending_time, "A", str(seq), key.key_id, target)
    if key.scheme == "hmac":
        return signing.sign_hmac(key.secret, message)
    return signing.sign_ed25519(key.private_key, message)


def now_fix(offset_s: float = 0.0) -> str:
    return format_utc_timestamp(datetime.fromtimestamp(time.time() + offset_s, UTC))


class RawClient:
    """A FIX client at the byte level: sends exactly what a test says, collects messages."""

    def __init__(self, port: int, key=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.key = key
        self.seq = 1
        self.reader = FrameReader()
        self.received: list[Message] = []
        self.closed = False

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, msg_type: str, fields, *, seq: int | None = None, sending_time: str | None = None, header_extra=()) -> int:
        number = self.seq if seq is None else seq
        if seq is None:
            self.seq += 1
        header = [(49, self.key.key_id), (56, "BOURSE"), (34, number), (52, sending_time or now_fix()), *header_extra]
        self.send_raw(encode(msg_type, header, fields))
        return number

    def logon(self, *, heartbeat=30, reset=False, seq=None, signature=None, sending_time=None, extra=()) -> int:
        number = self.seq if seq is None else seq
        sending_time = sending_time or now_fix()
        sig = signature if signature is not None else logon_signature(self.key, sending_time, number)
        fields = [(98, 0), (108, heartbeat), (141, "Y" if reset else None), (95, len(sig)), (96, sig), *extra]
        return self.send("A", fields, seq=seq, sending_time=sending_time)

    def read(self, timeout=5.0) -> Message | None:
        """The next message, or None on timeout or when the gateway closed the connection."""
        deadline = time.monotonic() + timeout
        while True:
            if self.received:
                return self.received.pop(0)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed:
                return None
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return None
            except ConnectionError:
                data = b""
            if not data:
                self.closed = True
                continue
            for frame in self.reader.feed(data):
                assert frame.message is not None, f"gateway sent a bad frame: {frame}"
                self.received.append(frame.message)

    def expect(self, msg_type: str, timeout=5.0, skip=("0",)) -> Message:
        """The next message of ``msg_type``, skipping heartbeats; fails on anything else."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.read(max(0.0, deadline - time.monotonic()))
            assert message is not None, f"expected 35={msg_type}, got nothing (closed={self.closed})"
            if message.msg_type in skip and msg_type not in skip:
                continue
            assert message.msg_type == msg_type, f"expected 35={msg_type}, got {message.fields}"
            return message

    def wait_closed(self, timeout=5.0) -> bool:
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.read(0.2)
        return self.closed

    def close(self):
        self.sock.close()


def new_order(cl_ord_id, side="1", qty="1.0000", price="100.00", ord_type="2", tif=None, symbol="BTC-USD", extra=()):
    return [(11, cl_ord_id), (55, symbol), (54, side), (60, now_fix()), (40, ord_type), (38, qty),
            (44, price if ord_type == "2" else None), (59, tif), *extra]


# --- QuickFIX --------------------------------------------------------------------------

import quickfix as fix  # noqa: E402  (after the helpers that do not need it)


class QuickFixApp(fix.Application):
    """Signs the Logon as Bourse requires, and queues what it receives."""

    def __init__(self, key, cancel_on_disconnect: str | None = None, pending_new: str | None = None):
        super().__init__()
        self.key = key
        self.cancel_on_disconnect = cancel_on_disconnect
        self.pending_new = pending_new
        self.app_messages: queue.Queue = queue.Queue()
        self.admin_messages: queue.Queue = queue.Queue()
        self.logged_on = threading.Event()
        self.logged_out = threading.Event()
        self.session_id = None

    def onCreate(self, session_id):
        self.session_id = session_id

    def onLogon(self, session_id):
        self.logged_out.clear()
        self.logged_on.set()

    def onLogout(self, session_id):
        self.logged_on.clear()
        self.logged_out.set()

    def toAdmin(self, message, session_id):
        header = message.getHeader()
        if header.getField(35) == "A":
            sending_time, seq = header.getField(52), header.getField(34)
            signature = logon_signature(self.key, sending_time, seq)
            message.setField(fix.RawDataLength(len(signature)))
            message.setField(fix.RawData(signature))
            if self.cancel_on_disconnect:
                message.setField(8013, self.cancel_on_disconnect)
            if self.pending_new:
                message.setField(8014, self.pending_new)

    def fromAdmin(self, message, session_id):
        self.admin_messages.put(_as_message(message))

    def toApp(self, message, session_id):
        pass

    def fromApp(self, message, session_id):
        self.app_messages.put(_as_message(message))


def _as_message(message) -> Message:
    raw = message.toString().encode("latin-1")
    frames = FrameReader().feed(raw)
    return frames[0].message


class QuickFixClient:
    """A QuickFIX SocketInitiator for one key against the gateway on ``port``."""

    def __init__(self, key, port: int, *, heartbeat=30, reset_on_logon=False, store_dir: str | None = None,
                 cancel_on_disconnect: str | None = None, pending_new: str | None = None,
                 app: QuickFixApp | None = None):
        self.key, self.port = key, port
        self.dir = store_dir or tempfile.mkdtemp(prefix="fixqf-")
        config = Path(self.dir) / "initiator.cfg"
        config.write_text(initiator_config(key.key_id, port, self.dir, heartbeat=heartbeat, reset_on_logon=reset_on_logon))
        self.app = app or QuickFixApp(key, cancel_on_disconnect, pending_new)
        settings = fix.SessionSettings(str(config))
        self.initiator = fix.SocketInitiator(self.app, fix.FileStoreFactory(settings), settings, fix.FileLogFactory(settings))
        self.session_id = fix.SessionID("FIX.4.4", key.key_id, "BOURSE")

    def start(self, wait_logon=True, timeout=10.0) -> bool:
        self.initiator.start()
        return self.app.logged_on.wait(timeout) if wait_logon else True

    def stop(self):
        """Log out and stop. The initiator is dropped as well: QuickFIX keeps a stopped
        initiator's session registered under the same SessionID, and a later initiator's
        ``sendToTarget`` would find that one."""
        if self.initiator is not None:
            self.initiator.stop()
            self.initiator = None
            gc.collect()

    def send(self, message) -> None:
        assert fix.Session.sendToTarget(message, self.session_id)

    def next_app(self, timeout=5.0, msg_type: str | None = None) -> Message:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no application message {msg_type or ''} within {timeout} s"
            message = self.app.app_messages.get(timeout=remaining)
            if msg_type is None or message.msg_type == msg_type:
                return message

    def no_app_message(self, within=0.5) -> bool:
        try:
            self.app.app_messages.get(timeout=within)
        except queue.Empty:
            return True
        return False

    def session(self):
        return fix.Session.lookupSession(self.session_id)


BOURSE_DICTIONARY = ROOT_DIR / "docs" / "fix44-bourse.xml"


def documented_initiator_config() -> str:
    """The ```ini block of docs/fix.md's "A QuickFIX initiator configuration", verbatim."""
    doc = (ROOT_DIR / "docs" / "fix.md").read_text()
    section = doc[doc.index("## A QuickFIX initiator configuration"):]
    return section[section.index("```ini\n") + len("```ini\n"):section.index("```", section.index("```ini") + 6)]


def initiator_config(key_id: str, port: int, store_dir: str, *, heartbeat=30, reset_on_logon=False) -> str:
    """docs/fix.md's initiator configuration, as written there, with only this run's key,
    port, folders and the dictionary's path filled in (so the documented one is the tested one)."""
    values = {
        "ReconnectInterval": "1", "FileStorePath": f"{store_dir}/store", "FileLogPath": f"{store_dir}/log",
        "DataDictionary": str(BOURSE_DICTIONARY), "ResetOnLogon": "Y" if reset_on_logon else "N",
        "SenderCompID": key_id, "SocketConnectPort": str(port), "HeartBtInt": str(heartbeat),
    }
    lines = []
    for line in documented_initiator_config().splitlines():
        name = line.split("=", 1)[0]
        lines.append(f"{name}={values[name]}" if "=" in line and name in values else line)
    return "\n".join(lines) + "\n"


def qf_new_order(cl_ord_id, side, qty, price=None, ord_type=fix.OrdType_LIMIT, tif=None, symbol="BTC-USD", post_only=False):
    message = fix.Message()
    message.getHeader().setField(fix.MsgType(fix.MsgType_NewOrderSingle))
    message.setField(fix.ClOrdID(cl_ord_id))
    message.setField(fix.Symbol(symbol))
    message.setField(fix.Side(side))
    message.setField(fix.TransactTime())
    message.setField(fix.OrdType(ord_type))
    message.setField(fix.StringField(38, qty))  # the decimal string as written, never a float
    if price is not None:
        message.setField(fix.StringField(44, price))
    if tif is not None:
        message.setField(fix.TimeInForce(tif))
    if post_only:
        message.setField(fix.ExecInst("6"))
    return message


def qf_replace(cl, orig, side, quantity, price, ord_type=fix.OrdType_LIMIT, symbol="BTC-USD"):
    message = fix.Message()
    message.getHeader().setField(fix.MsgType(fix.MsgType_OrderCancelReplaceRequest))
    message.setField(fix.OrigClOrdID(orig))
    message.setField(fix.ClOrdID(cl))
    message.setField(fix.Symbol(symbol))
    message.setField(fix.Side(side))
    message.setField(fix.TransactTime())
    message.setField(fix.OrdType(ord_type))
    message.setField(fix.StringField(38, quantity))
    if price is not None:
        message.setField(fix.StringField(44, price))
    return message


def qf_cancel(cl_ord_id, orig_cl_ord_id, side, symbol="BTC-USD"):
    message = fix.Message()
    message.getHeader().setField(fix.MsgType(fix.MsgType_OrderCancelRequest))
    message.setField(fix.ClOrdID(cl_ord_id))
    message.setField(fix.OrigClOrdID(orig_cl_ord_id))
    message.setField(fix.Symbol(symbol))
    message.setField(fix.Side(side))
    message.setField(fix.TransactTime())
    return message


def qf_status(cl_ord_id, side, symbol="BTC-USD", req_id=None):
    message = fix.Message()
    message.getHeader().setField(fix.MsgType(fix.MsgType_OrderStatusRequest))
    message.setField(fix.ClOrdID(cl_ord_id))
    message.setField(fix.Symbol(symbol))
    message.setField(fix.Side(side))
    if req_id:
        message.setField(fix.StringField(790, req_id))
    return message

