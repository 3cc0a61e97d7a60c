"""The commit signal from writers (engine, settlement, order services) to the readers of the
outbox (WebSocket relays; the FIX gateway reads on the engine's verdict signal).

After a transaction that wrote outbox events commits, its writer announces the events' ids
once — one message per transaction, however many subscribers there are. With ``REDIS_URL``
the message is a Redis ``PUBLISH`` on ``bourse:outbox:{db}`` (every WebSocket process on every
machine subscribes); in the embedded mode it is a unix datagram to each WebSocket process's
socket under the data folder (``run/ws-*.sock``), like the engine's verdict signal.

Ids travel as ranges (``"17-420,431"``): a batch's rows are nearly always consecutive.
A signal is only a hint: a reader re-reads the outbox periodically, so a lost one delays an
event, never loses it.
"""
from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings

from exchange import pubsub

from .. import notify

log = logging.getLogger("bourse.ws")

REDIS_CHANNEL_PREFIX = "bourse:outbox"  # + ":{redis db}": pub/sub ignores databases
MAX_MESSAGE = 60_000  # bytes per message: under the default unix datagram buffer

def encode(ids) -> list[str]:
    """Sorted ids as comma-separated ranges, split into messages of at most MAX_MESSAGE."""
    messages: list[str] = []
    parts: list[str] = []
    size = 0
    ids = sorted(ids)
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        part = str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}"
        if size + len(part) + 1 > MAX_MESSAGE:
            messages.append(",".join(parts))
            parts, size = [], 0
        parts.append(part)
        size += len(part) + 1
        i = j + 1
    if parts:
        messages.append(",".join(parts))
    return messages


def decode(message: str) -> list[int]:
    ids: list[int] = []
    for part in message.split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        ids.extend(range(int(low), int(high or low) + 1))
    return ids


def uses_redis() -> bool:
    return bool(settings.REDIS_URL)


def redis_channel() -> str:
    """The pub/sub channel of ``REDIS_URL``'s database (``pubsub.redis_db_channel``)."""
    return pubsub.redis_db_channel(REDIS_CHANNEL_PREFIX)


def socket_dir() -> Path:
    return pubsub.run_dir()


def publish_batch(orders, hints, ids) -> None:
    """After an engine batch committed: its verdicts (``notify.publish_verdicts``) and the
    announcement of its outbox rows ``ids`` — with Redis in ONE round trip. Never raises."""
    if not uses_redis():
        notify.publish_verdicts(orders, hints)
        announce(ids)
        return
    notify.publish_verdicts(orders, hints, also=[(redis_channel(), message) for message in encode(ids)] if ids else ())


def announce(ids, wake: int | None = None) -> None:
    """Tell every WebSocket process that the outbox rows ``ids`` committed, and with ``wake``
    the engine owning that market that a command is waiting (``notify.wake_engine``) — with
    Redis in the same round trip. Call after the commit. Never raises: a failed announcement
    only delays delivery until the relay's next poll, a lost wake-up until the engine's
    re-check."""
    if uses_redis():
        try:
            commands = [("PUBLISH", redis_channel(), message) for message in encode(ids)] if ids else []
            if wake is not None:
                commands.append(notify.redis_wake_command(wake))
            if commands:
                pubsub.redis_direct().pipeline(commands)
        except Exception:
            log.exception("could not announce outbox events; the relays' poll will find them")
        return
    if wake is not None:
        notify.wake_engine(wake)
    if not ids:
        return
    try:
        messages = encode(ids)
        for path in socket_dir().glob("ws-*.sock"):
            for message in messages:
                if not pubsub.send_datagram(path, message.encode()):
                    path.unlink(missing_ok=True)  # its process is gone
                    break
    except Exception:
        log.exception("could not announce outbox events; the relays' poll will find them")


