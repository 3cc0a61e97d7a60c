"""The FIX codec: round trips, framing across arbitrary TCP chunking, and every kind of bad
input classified (frame with a field error -> Reject; unframeable bytes -> fatal)."""
import random

import pytest
import simplefix
from hypothesis import given, settings
from hypothesis import strategies as st

from trading.fix.codec import MAX_BODY, FieldError, FrameReader, Message, checksum, encode, parse_fields

HEADER = [(49, "bk_key"), (56, "BOURSE"), (34, 7), (52, "20261124-01:02:03.456")]


def one(data: bytes):
    frames = FrameReader().feed(data)
    assert len(frames) == 1
    return frames[0]


def test_encode_matches_an_independent_encoder():
    # given the same message built by simplefix (an independent implementation)
    reference = simplefix.FixMessage()
    reference.append_pair(8, "FIX.4.4")
    reference.append_pair(35, "D")
    for tag, value in HEADER:
        reference.append_pair(tag, value)
    reference.append_pair(11, "abc")
    reference.append_pair(44, "100.25")
    # then both encodings are byte-identical (BodyLength and CheckSum included)
    assert encode("D", HEADER, [(11, "abc"), (44, "100.25")]) == reference.encode()


def test_round_trip_keeps_fields_in_order():
    raw = encode("8", HEADER, [(37, "1"), (58, "text with = sign"), (11, None), (6, "0")])
    frame = one(raw)
    assert frame.error is None and frame.fatal is None
    assert frame.message.fields == [(35, "8"), (49, "bk_key"), (56, "BOURSE"), (34, "7"),
                                    (52, "20261124-01:02:03.456"), (37, "1"), (58, "text with = sign"), (6, "0")]
    assert frame.message.raw == raw and frame.message.msg_type == "8"


def test_data_field_may_contain_soh_and_equals():
    payload = "ab\x01c=d"
    frame = one(encode("A", HEADER, [(98, 0), (95, len(payload)), (96, payload), (108, 30)]))
    assert frame.message.get(96) == payload and frame.message.get(108) == "30"


def test_data_field_shorter_than_its_length_is_a_field_error():
    frame = one(encode("A", HEADER, [(95, 10), (96, "short")]))
    assert frame.error.reason == 5 and frame.error.tag == 96


@given(st.lists(st.binary(min_size=0, max_size=40), min_size=0, max_size=6), st.integers(min_value=1, max_value=50))
@settings(max_examples=60, deadline=None)
def test_any_chunking_yields_the_same_messages(extra, chunk):
    messages = [encode("D", HEADER, [(11, f"id{i}"), (58, "v" + value.hex())]) for i, value in enumerate(extra or [b""])]
    stream = b"".join(messages)
    reader = FrameReader()
    frames = []
    for start in range(0, len(stream), chunk):
        frames += reader.feed(stream[start:start + chunk])
    assert [f.raw for f in frames] == messages
    assert all(f.message is not None for f in frames)


def test_wrong_checksum_is_a_frame_error_and_the_stream_goes_on():
    good = encode("0", HEADER)
    bad = bytearray(encode("D", HEADER, [(11, "x")]))
    bad[-4:-1] = b"%03d" % ((int(bad[-4:-1]) + 1) % 256)
    frames = FrameReader().feed(bytes(bad) + good)
    assert frames[0].error is not None and frames[0].error.reason == 99 and "CheckSum" in frames[0].error.text
    assert frames[1].message is not None and frames[1].message.msg_type == "0"


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"35=D\x01abc=1\x01", 0),  # tag not a number
        (b"35=D\x0111=\x01", 4),  # tag without value
        (b"35=D\x0111\x01", 0),  # no '='
        (b"49=x\x0135=D\x01", 14),  # MsgType not first
        (b"35=D\x0195=x\x01", 6),  # length field not a number
    ],
)
def test_malformed_fields_are_classified(body, reason):
    raw = b"8=FIX.4.4\x019=%d\x01" % len(body) + body
    raw += b"10=%03d\x01" % checksum(raw)
    frame = one(raw)
    assert frame.message is None and frame.error.reason == reason


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"8=FIX.4.2\x019=5\x0135=0\x0110=000\x01",
        b"8=FIX.4.4\x019=abc\x0135=0\x01",
        b"8=FIX.4.4\x019=123456789012\x01",
        b"8=FIX.4.4\x019=5\x0135=0\x01XXXXXXXX",  # no 10= where the length says
        b"8=FIX.4.4\x019=%d\x01" % (MAX_BODY + 1),  # oversized, refused before it is read
    ],
)
def test_unframeable_bytes_are_fatal(data):
    reader = FrameReader()
    frames = reader.feed(data)
    assert frames and frames[-1].fatal and reader.broken
    assert reader.feed(encode("0", HEADER)) == []  # nothing is trusted after it


def test_partial_prefix_waits_for_more():
    reader = FrameReader()
    assert reader.feed(b"8=FI") == []
    assert reader.feed(encode("0", HEADER)[4:])[0].message.msg_type == "0"


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_garbage_never_raises(data):
    reader = FrameReader()
    for start in range(0, len(data), 17):
        for frame in reader.feed(data[start:start + 17]):
            assert frame.message or frame.error or frame.fatal


def test_random_corruption_of_valid_messages_never_raises():
    rng = random.Random(8)
    base = encode("D", HEADER, [(11, "abc"), (55, "BTC-USD"), (54, "1"), (38, "1.5"), (44, "100")])
    for _ in range(2000):
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        for frame in FrameReader().feed(bytes(data) + base):
            assert frame.message or frame.error or frame.fatal


def test_group_parsing_checks_the_count():
    fields = parse_fields(b"35=D\x01453=2\x01448=A\x01447=D\x01452=3\x01448=B\x01447=D\x01452=1\x0111=x\x01")
    message = Message(fields)
    assert message.group(453, 448, {448, 447, 452}) == [{448: "A", 447: "D", 452: "3"}, {448: "B", 447: "D", 452: "1"}]
    wrong = Message(parse_fields(b"35=D\x01453=3\x01448=A\x01447=D\x0111=x\x01"))
    with pytest.raises(FieldError) as raised:
        wrong.group(453, 448, {448, 447, 452})
    assert raised.value.reason == 16


def test_duplicate_tags_are_counted():
    message = Message(parse_fields(b"35=D\x0111=a\x0111=b\x01"))
    assert message.get(11) == "a" and message.count(11) == 2
