"""FIX 4.4 tag=value framing: decode a byte stream into messages, encode messages.

A small codec of its own rather than a general library, because the gateway must decide
precisely what to do with every kind of bad input (tests/fix/test_codec.py covers each):

- ``FrameReader.feed(bytes)`` buffers a TCP stream and yields ``Frame``\\s. A frame whose
  ``BodyLength`` and ``CheckSum`` are right is ``Frame(message=...)``; a frame that is
  delimited correctly but whose checksum is wrong, or whose body is not ``tag=value``
  fields, is ``Frame(error=...)`` (the session answers with a Reject and goes on); bytes
  that cannot be framed at all (not ``8=FIX.4.4``, a ``BodyLength`` that is not a number or
  over ``MAX_BODY``, no ``10=`` where the length says) end the stream: the last frame has
  ``fatal`` set (the session answers with a Logout and closes: after such bytes no message
  boundary can be trusted).
- ``encode(...)`` writes ``8``/``9``/``35``/header fields, the body, and ``10``.

Length-prefixed data fields (``RawDataLength(95)``/``RawData(96)`` and the other FIX 4.4
pairs) are read by their length, so they may contain SOH.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

SOH = b"\x01"
BEGIN_STRING = b"FIX.4.4"
MAX_BODY = 16 * 1024  # far above any message Bourse accepts; refuses memory exhaustion
_PREFIX = b"8=FIX.4.4\x019="
_TAG = re.compile(rb"^[1-9][0-9]{0,8}$")
# length tag -> data tag (FIX 4.4 data fields that may be sent by an initiator)
DATA_FIELDS = {95: 96, 90: 91, 93: 89, 212: 213, 348: 349, 350: 351, 352: 353, 354: 355, 356: 357}


class FramingError(Exception):
    """The byte stream cannot be split into messages any more."""


class FieldError(Exception):
    """A framed message whose fields are malformed; ``reason`` is a SessionRejectReason."""

    def __init__(self, text: str, reason: int, tag: int | None = None):
        super().__init__(text)
        self.text, self.reason, self.tag = text, reason, tag


@dataclass
class Message:
    """A decoded message: its fields in order (tag, value) with the values as ``str``
    (latin-1, so every byte round-trips)."""

    fields: list[tuple[int, str]]
    raw: bytes = b""
    _first: dict[int, str] = field(default_factory=dict, repr=False)
    _counts: dict[int, int] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        for tag, value in self.fields:
            self._first.setdefault(tag, value)
            self._counts[tag] = self._counts.get(tag, 0) + 1

    @property
    def msg_type(self) -> str | None:
        return self._first.get(35)

    def get(self, tag: int, default: str | None = None) -> str | None:
        return self._first.get(tag, default)

    def count(self, tag: int) -> int:
        return self._counts.get(tag, 0)

    def __contains__(self, tag: int) -> bool:
        return tag in self._first

    def group(self, count_tag: int, first_tag: int, member_tags: set[int]) -> list[dict[int, str]]:
        """A repeating group as a list of {tag: value}: entries start at ``first_tag``; the
        number must match the ``count_tag`` field (else ``FieldError`` reason 16)."""
        entries: list[dict[int, str]] = []
        inside = False
        for tag, value in self.fields:
            if tag == count_tag:
                inside = True
                continue
            if not inside:
                continue
            if tag == first_tag:
                entries.append({tag: value})
            elif tag in member_tags and entries and tag not in entries[-1]:
                entries[-1][tag] = value
            else:
                inside = tag in member_tags  # a repeated member without its delimiter ends it
                if not inside:
                    break
        declared = self.get(count_tag)
        if declared is not None and (not (declared.isascii() and declared.isdigit()) or int(declared) != len(entries)):
            raise FieldError(f"NumInGroup {count_tag}={declared} but {len(entries)} entries", 16, count_tag)
        return entries


@dataclass
class Frame:
    message: Message | None = None
    error: FieldError | None = None
    raw: bytes = b""
    fatal: str | None = None


def checksum(data: bytes) -> int:
    return sum(data) % 256


def parse_fields(body: bytes) -> list[tuple[int, str]]:
    """Split ``tag=value<SOH>...`` (the bytes between BodyLength and CheckSum) into fields."""
    fields: list[tuple[int, str]] = []
    position, end = 0, len(body)
    data_length: tuple[int, int] | None = None  # (data tag, length) announced by a length tag
    while position < end:
        equals = body.find(b"=", position)
        if equals < 0:
            raise FieldError("field without '='", 0)
        tag_bytes = body[position:equals]
        if not _TAG.match(tag_bytes):
            raise FieldError(f"invalid tag number {tag_bytes[:12].decode('latin-1')!r}", 0)
        tag = int(tag_bytes)
        if data_length is not None and data_length[0] == tag:
            stop = equals + 1 + data_length[1]
            if stop >= end or body[stop:stop + 1] != SOH:
                raise FieldError(f"data field {tag} is not {data_length[1]} bytes long", 5, tag)
        else:
            stop = body.find(SOH, equals + 1)
            if stop < 0:
                raise FieldError("last field not terminated by SOH", 0)
        value = body[equals + 1:stop].decode("latin-1")
        if value == "":
            raise FieldError(f"tag {tag} has no value", 4, tag)
        if tag not in DATA_FIELDS.values() and "\x00" in value:
            raise FieldError(f"tag {tag} holds a NUL byte", 6, tag)  # text fields cannot; RawData may
        data_length = None
        if tag in DATA_FIELDS:
            if not (value.isascii() and value.isdigit()):  # str.isdigit() also takes "²"
                raise FieldError(f"length field {tag} must be a number", 6, tag)
            data_length = (DATA_FIELDS[tag], int(value))
        fields.append((tag, value))
        position = stop + 1
    return fields


class FrameReader:
    """Incremental decoder for one connection."""

    def __init__(self, max_body: int = MAX_BODY):
        self.buffer = bytearray()
        self.max_body = max_body
        self.broken = False

    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by ``data``. After bytes that cannot be framed the last frame
        has ``fatal`` set and the reader is spent (``broken``)."""
        if self.broken:
            return []
        self.buffer += data
        frames = []
        while True:
            try:
                frame = self._next()
            except FramingError as error:
                self.buffer.clear()
                self.broken = True
                frames.append(Frame(fatal=str(error)))
                return frames
            if frame is None:
                return frames
            frames.append(frame)

    def _next(self) -> Frame | None:
        buf = self.buffer
        if not buf:
            return None
        if not _PREFIX.startswith(bytes(buf[: len(_PREFIX)])):
            raise FramingError("message does not start with 8=FIX.4.4<SOH>9=")
        if len(buf) < len(_PREFIX):
            return None
        length_end = buf.find(SOH, len(_PREFIX), len(_PREFIX) + 8)
        if length_end < 0:
            if len(buf) >= len(_PREFIX) + 8:
                raise FramingError("BodyLength(9) is not a number")
            return None
        length_text = bytes(buf[len(_PREFIX):length_end])
        if not length_text.isdigit():
            raise FramingError("BodyLength(9) is not a number")
        body_length = int(length_text)
        if body_length > self.max_body:
            raise FramingError(f"BodyLength {body_length} exceeds the limit of {self.max_body} bytes")
        body_start = length_end + 1
        trailer_start = body_start + body_length
        total = trailer_start + 7  # "10=nnn<SOH>"
        if len(buf) < total:
            return None
        raw = bytes(buf[:total])
        trailer = raw[trailer_start:]
        if not (trailer.startswith(b"10=") and trailer.endswith(SOH) and trailer[3:6].isdigit()):
            raise FramingError("CheckSum(10) not found where BodyLength(9) says the body ends")
        if raw[trailer_start - 1:trailer_start] != SOH:
            raise FramingError("body does not end with SOH where BodyLength(9) says")
        del buf[:total]
        declared, computed = int(trailer[3:6]), checksum(raw[:trailer_start])
        if declared != computed:
            return Frame(error=FieldError(f"CheckSum {declared:03d} is wrong (computed {computed:03d})", 99), raw=raw)
        try:
            fields = parse_fields(raw[body_start:trailer_start])
        except FieldError as error:
            return Frame(error=error, raw=raw)
        if not fields or fields[0][0] != 35:
            return Frame(error=FieldError("MsgType(35) must be the first field after BodyLength", 14, 35), raw=raw)
        return Frame(message=Message(fields, raw=raw), raw=raw)


def _field(tag: int, value) -> bytes:
    text = value if isinstance(value, str) else str(value)
    return b"%d=%s\x01" % (tag, text.encode("latin-1"))


def encode_fields(fields) -> bytes:
    return b"".join(_field(tag, value) for tag, value in fields if value is not None)


def encode(msg_type: str, header, body: bytes | list = b"") -> bytes:
    """A complete message: ``header`` is the (tag, value) list after MsgType (SenderCompID,
    TargetCompID, MsgSeqNum, ...), ``body`` the already-encoded fields or a (tag, value) list."""
    if not isinstance(body, (bytes, bytearray)):
        body = encode_fields(body)
    content = _field(35, msg_type) + encode_fields(header) + bytes(body)
    head = b"8=FIX.4.4\x019=%d\x01" % len(content)
    message = head + content
    return message + b"10=%03d\x01" % checksum(message)
