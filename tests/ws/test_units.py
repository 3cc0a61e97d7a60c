"""Small pieces of the fan-out: the pre-built WebSocket frame and the id-range encoding of
the commit signal."""
import pytest

from trading.outbox import signal
from trading.ws.relay import ws_text_frame


def parse_frame(frame: bytes) -> tuple[int, bytes]:
    """(opcode with FIN bit, payload) of an unmasked frame, per RFC 6455 5.2."""
    first, length = frame[0], frame[1]
    assert length & 0x80 == 0  # servers never mask
    offset = 2
    if length == 126:
        length, offset = int.from_bytes(frame[2:4], "big"), 4
    elif length == 127:
        length, offset = int.from_bytes(frame[2:10], "big"), 10
    assert len(frame) == offset + length
    return first, frame[offset:]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_text_frame_lengths(size):
    payload = b"x" * size
    first, body = parse_frame(ws_text_frame(payload))
    assert first == 0x81 and body == payload  # FIN + text


@pytest.mark.parametrize("ids", [[], [5], [1, 2, 3], [9, 3, 4, 7, 8, 20], list(range(100, 5000)) + [7000]])
def test_id_ranges_round_trip(ids):
    messages = signal.encode(ids)
    assert sorted(i for m in messages for i in signal.decode(m)) == sorted(ids)
    if ids:
        assert len(messages) == 1 and len(messages[0]) < 40  # ranges, not lists


def test_id_ranges_split_under_the_message_limit(monkeypatch):
    monkeypatch.setattr(signal, "MAX_MESSAGE", 50)
    ids = list(range(0, 400, 2))  # no runs: one part per id
    messages = signal.encode(ids)
    assert len(messages) > 1 and all(len(m) <= 50 for m in messages)
    assert [i for m in messages for i in signal.decode(m)] == ids
