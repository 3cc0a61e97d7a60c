"""A workaround for kombu's Redis transport (5.7.0) losing the Celery worker with Redis.

When Redis goes away while a task is in flight (``task_acks_late``: its message is still
unacknowledged), the worker's consumer closes its channel to reconnect, and the channel's
close restores the unacknowledged messages through a connection that no longer exists:
``AttributeError: 'NoneType' object has no attribute 'hostname'`` in ``_connparams``, which
Celery treats as unrecoverable — the worker exits instead of reconnecting (found by the chaos
suite, tests/chaos/test_chaos.py). The same happens to the acknowledgement of a task that
finishes while Redis is away.

Both are safe to skip: an unacknowledged message stays in Redis's unacked set and kombu puts
it back in the queue after the visibility timeout, and every Bourse task is idempotent
(settlement re-reads what is unsettled; the beat's sweep settles anything missed meanwhile).
So while the connection is gone, the restore and the acknowledgement are logged and skipped,
and the worker reconnects as it does with no task in flight.
"""
from __future__ import annotations

import logging
from functools import wraps

log = logging.getLogger("bourse.celery")

_installed = False


def _gone_errors() -> tuple[type[BaseException], ...]:
    import redis

    return (AttributeError, redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError)


def install() -> None:
    global _installed
    if _installed:
        return
    from kombu.transport import redis as transport

    qos = transport.QoS
    restore_unacked, ack = qos.restore_unacked, qos.ack

    @wraps(restore_unacked)
    def restore_unacked_while_connected(self, client=None):
        try:
            return restore_unacked(self, client)
        except _gone_errors() as error:
            log.warning("broker connection gone; %d unacknowledged message(s) return after the visibility timeout",
                        len(self._delivered), extra={"error": repr(error)})
            self._delivered.clear()
            return None

    @wraps(ack)
    def ack_while_connected(self, delivery_tag):
        try:
            return ack(self, delivery_tag)
        except _gone_errors() as error:
            log.warning("broker connection gone; a finished task's message returns after the visibility timeout",
                        extra={"error": repr(error)})
            self._delivered.pop(delivery_tag, None)
            return None

    setattr(qos, "restore_unacked", restore_unacked_while_connected)  # noqa: B010 - patching a class
    setattr(qos, "ack", ack_while_connected)  # noqa: B010
    _installed = True
