"""The worker's workaround for kombu's Redis transport (exchange/kombufix.py): with the
connection gone, restoring or acknowledging an in-flight message is skipped (logged), not
an unrecoverable error that ends the worker. The chaos suite proves the worker survives a
Redis outage under load; this pins the mechanism."""
from contextlib import contextmanager

import pytest
from kombu.transport import redis as transport

from exchange import kombufix


class GoneChannel:
    """A channel whose connection is gone, as kombu's is after Redis went away."""

    @contextmanager
    def conn_or_acquire(self, client=None):
        raise AttributeError("'NoneType' object has no attribute 'hostname'")
        yield  # pragma: no cover


@pytest.fixture
def qos():
    kombufix.install()
    qos = transport.QoS.__new__(transport.QoS)
    from collections import OrderedDict

    qos.channel = GoneChannel()
    qos._delivered = OrderedDict({"tag-1": object()})
    qos._delivered.restored = False
    qos._dirty = set()
    return qos


def test_restoring_unacked_messages_without_a_connection_is_skipped(qos, caplog):
    with caplog.at_level("WARNING", logger="bourse.celery"):
        assert qos.restore_unacked() is None
    assert not qos._delivered
    assert "1 unacknowledged message(s) return after the visibility timeout" in caplog.text


def test_acknowledging_without_a_connection_is_skipped(qos, caplog):
    with caplog.at_level("WARNING", logger="bourse.celery"):
        assert qos.ack("tag-1") is None
    assert "tag-1" not in qos._delivered
    assert "a finished task's message returns after the visibility timeout" in caplog.text


def test_installing_twice_wraps_once():
    kombufix.install()
    first = transport.QoS.restore_unacked
    kombufix.install()
    assert transport.QoS.restore_unacked is first
