"""Fuzzing the FIX codec and the application layer with a fixed, small budget (CI replays the
same examples: ``derandomize``): any input gives frames, a FieldError for a Reject, or an
answer message, and never an exception the session would die of."""
import os
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trading.fix.application import application_handle
from trading.fix.codec import FieldError, FrameReader, Message, checksum, encode

BUDGET = settings(max_examples=int(os.environ.get("BOURSE_FUZZ_EXAMPLES", "60")), deadline=None,
                  derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Values a client might send in a field: digits (ASCII and not), huge numbers, decimals,
# exponents, separators, Latin-1 noise.
VALUES = st.one_of(
    st.text(alphabet=string.digits + ".-+eE", min_size=1, max_size=30),
    st.text(alphabet="0123456789٠١٢²³", min_size=1, max_size=25),
    st.integers(min_value=-(10**30), max_value=10**40).map(str),
    st.sampled_from(["1", "2", "0", "NONE", "BTC-USD", "Y", "N", "6", "3", "4", "100.00", "0.0100"]),
    st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255, exclude_characters="\x01="),
            min_size=1, max_size=40),
)
TAGS = st.sampled_from([11, 37, 41, 55, 54, 60, 40, 38, 44, 152, 59, 18, 790, 7, 16, 36, 123, 112, 9999])


def _frame(fields) -> bytes:
    return encode("D", [(49, "K"), (56, "BOURSE"), (34, 2), (52, "20261205-10:00:00")], fields)


WIRE_VALUES = VALUES.map(lambda value: value.encode().decode("latin-1"))  # UTF-8 bytes, as a client would send


@BUDGET
@given(st.lists(st.tuples(TAGS, WIRE_VALUES), max_size=12), st.binary(max_size=64), st.integers(min_value=1, max_value=97))
def test_the_codec_frames_anything_without_raising(fields, noise, cut):
    data = _frame(fields) + noise + _frame(fields[::-1])
    reader = FrameReader()
    frames = []
    for start in range(0, len(data), cut):
        frames += reader.feed(data[start:start + cut])
    assert frames, "the first message is whole"
    first = frames[0]
    assert first.message is not None or first.error is not None
    for frame in frames:
        assert (frame.message, frame.error, frame.fatal).count(None) >= 2


@BUDGET
@given(st.binary(max_size=300))
def test_random_bytes_are_framing_errors_not_exceptions(data):
    reader = FrameReader()
    frames = reader.feed(b"8=FIX.4.4\x019=" + data) + reader.feed(data)
    for frame in frames:
        assert frame.fatal is not None or frame.error is not None or frame.message is not None


@pytest.mark.django_db
@BUDGET
@given(st.sampled_from(["D", "F", "H"]), st.lists(st.tuples(TAGS, VALUES), max_size=10))
def test_application_messages_with_any_values_are_answered_or_rejected(market, msg_type, fields):
    from tests.factories import ApiKeyFactory

    key = ApiKeyFactory()
    base = {"D": [(11, "c"), (55, "BTC-USD"), (54, "1"), (60, "20261205-10:00:00"), (40, "2"), (38, "1"), (44, "100")],
            "F": [(11, "c2"), (41, "c"), (55, "BTC-USD"), (54, "1"), (60, "20261205-10:00:00")],
            "H": [(11, "c"), (55, "BTC-USD"), (54, "1")]}[msg_type]
    message = Message([(35, msg_type), *fields, *base])
    try:
        outcome = application_handle(key.key_id, key.account, message)
    except FieldError as error:  # becomes a session Reject naming the tag
        assert error.reason in (1, 4, 5, 6, 13, 99) and error.text
        return
    for answer_type, answer in outcome.messages:
        assert answer_type in ("8", "9")
        text = dict(answer).get(58)
        assert text is None or not text.startswith("internal_error")


def test_checksum_helper_matches_the_encoder():
    frame = _frame([(11, "x")])
    assert int(frame[-4:-1]) == checksum(frame[:-7])
