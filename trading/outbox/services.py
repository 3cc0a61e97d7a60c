"""The write side of the outbox: sequencing, persisting and announcing events.

Every transaction that publishes events calls ``outbox_write`` with them, inside the
transaction: private events (``account`` set) get their account's next sequence on their
channel from ``AccountSequence`` (``INSERT … ON CONFLICT DO UPDATE … RETURNING`` with the
rows in key order, so two writers never deadlock, and the row stays locked until commit, so
sequence N+1 cannot commit before N); all events are inserted — on PostgreSQL the bump and the
insert are one statement (``WRITE_SQL``); after commit their ids are
announced (``trading.outbox.signal``) to the processes that read them back: the WebSocket
relays fan them out, the FIX gateways turn them into execution reports. The announcement is
a hint: readers also re-read the outbox periodically and fill any sequence gap from it, so a
lost hint delays an event, never loses it.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Balance
from exchange import wire
from exchange.pgarrays import array_literal, int_array

from ..models import AccountSequence, Market, OutboxEvent
from . import signal

PRIVATE_CHANNELS = ("orders", "fills", "balances")
_CHUNK = 500  # counters per bump on SQLite (well under its bound-parameter limit)


def _bump(counts: dict[tuple[int, str], int]) -> dict[tuple[int, str], int]:
    """Advance each (account, channel) counter by its count; return the new last values
    (SQLite; PostgreSQL bumps them inside ``WRITE_SQL``)."""
    table = AccountSequence._meta.db_table
    keys = sorted(counts)  # fixed lock order across all writers
    last: dict[tuple[int, str], int] = {}
    with connection.cursor() as cursor:
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start:start + _CHUNK]
            values = ", ".join(["(%s, %s, %s)"] * len(chunk))
            params = [p for key in chunk for p in (key[0], key[1], counts[key])]
            cursor.execute(
                f"INSERT INTO {table} (account_id, channel, last) VALUES {values} "
                f"ON CONFLICT (account_id, channel) DO UPDATE SET last = {table}.last + excluded.last "
                f"RETURNING account_id, channel, last",
                params,
            )
            for account_id, channel, value in cursor.fetchall():
                last[(account_id, channel)] = value
    return last


_COLUMNS = ("market_id", "account_id", "channel", "sequence", "payload", "created_at")

# PostgreSQL: the counters' bump and the rows' insert as ONE statement of a fixed text (so the
# connection prepares it), the rows bound as arrays and the payloads as ONE JSON document (no
# per-element escaping). A private row's sequence is its stream's new last value less the
# events of its stream that follow it in this write (``back``); ids are drawn in row order.
WRITE_SQL = f"""
WITH bump AS (
    INSERT INTO {AccountSequence._meta.db_table} AS s (account_id, channel, last)
    SELECT * FROM unnest(%(k_account)s::bigint[], %(k_channel)s::text[], %(k_count)s::bigint[]) ORDER BY 1, 2
    ON CONFLICT (account_id, channel) DO UPDATE SET last = s.last + excluded.last
    RETURNING account_id, channel, last
), r AS MATERIALIZED (
    SELECT nextval(pg_get_serial_sequence('{OutboxEvent._meta.db_table}', 'id')) AS id, u.market_id, u.account_id,
           u.channel, CASE WHEN u.account_id IS NULL THEN u.sequence ELSE b.last - u.back END AS sequence,
           p.payload, u.created_at, u.n
    FROM unnest(%(market)s::bigint[], %(account)s::bigint[], %(channel)s::text[], %(back)s::bigint[],
                %(sequence)s::bigint[], %(created)s::timestamptz[])
         WITH ORDINALITY AS u(market_id, account_id, channel, back, sequence, created_at, n)
    JOIN jsonb_array_elements(%(payloads)s::jsonb) WITH ORDINALITY AS p(payload, n) ON p.n = u.n
    LEFT JOIN bump b ON b.account_id = u.account_id AND b.channel = u.channel
    ORDER BY u.n
), written AS (
    INSERT INTO {OutboxEvent._meta.db_table} (id, {", ".join(_COLUMNS)})
    SELECT id, {", ".join(_COLUMNS)} FROM r ORDER BY n
)
SELECT id, sequence FROM r ORDER BY n
"""


def _write_postgres(groups: list[list[OutboxEvent | Event]], rows: list[OutboxEvent | Event]) -> None:
    """Sequence and insert ``rows`` (row i holds the events of ``groups[i]``) in one statement;
    set each row's and each private event's sequence and each row's primary key."""
    counts: Counter[tuple[int, str]] = Counter()
    backs = [0] * len(rows)
    for i in range(len(rows) - 1, -1, -1):  # from the end: the events of each stream after row i
        row = rows[i]
        if row.account_id is not None:
            key = (row.account_id, row.channel)
            backs[i] = counts[key]
            counts[key] += len(groups[i])
    keys = sorted(counts)
    params = {
        "k_account": int_array(k[0] for k in keys), "k_channel": array_literal(k[1] for k in keys),
        "k_count": int_array(counts[k] for k in keys),
        "market": array_literal(r.market_id for r in rows), "account": array_literal(r.account_id for r in rows),
        "channel": array_literal(r.channel for r in rows), "back": int_array(backs),
        "sequence": array_literal(None if r.account_id is not None else r.sequence for r in rows),
        "created": array_literal(r.created_at.isoformat() for r in rows),  # type: ignore[union-attr]
        "payloads": _dumps([r.payload for r in rows]),
    }
    with connection.cursor() as cursor:
        cursor.execute(WRITE_SQL, params)
        written = cursor.fetchall()
    for row, group, (pk, sequence) in zip(rows, groups, written, strict=True):
        row.pk = pk
        if row.account_id is not None:
            row.sequence = sequence
            for back, event in enumerate(reversed(group)):
                event.sequence = sequence - back


def _dumps(value: Any) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, separators=(",", ":"))


@dataclass(slots=True)
class Event:
    """An outbox event before it is written: what ``OutboxEvent`` holds, without a model
    instance (the engine builds several per order; ``outbox_write`` takes either)."""

    channel: str
    payload: Any
    market_id: int | None = None
    account_id: int | None = None
    sequence: int | None = None
    created_at: datetime | None = None
    pk: int | None = None


def _stream(event: OutboxEvent | Event) -> tuple[str, int | None, int | None]:
    """The stream an event belongs to: an account's channel, or a market's public channel."""
    if event.account_id is not None:
        return event.channel, event.account_id, None
    return event.channel, None, event.market_id


def stream_groups(events: Sequence[OutboxEvent | Event]) -> list[list[OutboxEvent | Event]]:
    """The events by stream, streams in the order in which they first appear."""
    streams: dict[tuple[str, int | None, int | None], list[OutboxEvent | Event]] = {}
    for event in events:
        streams.setdefault(_stream(event), []).append(event)
    return list(streams.values())


def _merged(members: list[OutboxEvent | Event]) -> OutboxEvent | Event:
    """One stream's events as one row (a single event stays itself)."""
    first = members[0]
    if len(members) == 1:
        return first
    return Event(market_id=first.market_id, account_id=first.account_id, channel=first.channel,
                 sequence=members[-1].sequence, payload=[e.payload for e in members], created_at=first.created_at)


def batch_rows(events: Sequence[OutboxEvent | Event]) -> list[OutboxEvent | Event]:
    """One row per stream: the events of a stream that has several become ONE row whose
    ``payload`` is the list of their payloads, in order, and whose ``sequence`` is the last
    one's (a private stream's events are consecutive, so the first is ``sequence - n + 1``;
    a book update keeps its own sequence in its payload). Streams keep the order in which
    they first appear; a stream with one event stays a plain row. Call after sequencing."""
    return [_merged(group) for group in stream_groups(events)]


def outbox_write(
    events: Sequence[OutboxEvent | Event], *, batched: bool = False, announce: bool = True
) -> Sequence[OutboxEvent | Event]:
    """Sequence, insert and (after commit) announce ``events``. Call inside the writing
    transaction; the events' order in the list is their order in each stream. ``batched``:
    write one row per stream (``batch_rows``; the engine's batches, settlement's chunks) —
    readers see the same events, sequences and order (``trading.outbox.selectors`` expands
    them). ``announce=False``: the caller announces the rows' ids after the commit itself
    (the engine sends them with its verdicts, ``signal.publish_batch``). Returns the rows
    written."""
    if not events:
        return events
    if not connection.in_atomic_block:
        raise RuntimeError("outbox_write must run inside the writing transaction")
    now = timezone.now()
    for event in events:
        if event.created_at is None:
            event.created_at = now
    if connection.vendor == "postgresql":
        groups = stream_groups(events) if batched else [[event] for event in events]
        rows = [_merged(group) for group in groups]
        _write_postgres(groups, rows)
    else:
        counts = Counter((e.account_id, e.channel) for e in events if e.account_id is not None)
        if counts:
            last = _bump(counts)
            following = {key: last[key] - n for key, n in counts.items()}
            for event in events:
                if event.account_id is not None:
                    key = (event.account_id, event.channel)
                    following[key] += 1
                    event.sequence = following[key]
        rows = batch_rows(events) if batched else list(events)
        instances = [row if isinstance(row, OutboxEvent) else
                     OutboxEvent(market_id=row.market_id, account_id=row.account_id, channel=row.channel,
                                 sequence=row.sequence, payload=row.payload, created_at=row.created_at or now)
                     for row in rows]
        OutboxEvent.objects.bulk_create(instances, batch_size=1000)
        for row, instance in zip(rows, instances, strict=True):
            row.pk = instance.pk
    if announce:
        ids = [e.pk for e in rows]
        transaction.on_commit(lambda: signal.announce(ids))
    return rows


def book_update_payload(
    market: Market, sequence: int, bids: Iterable[tuple[Decimal, Decimal]], asks: Iterable[tuple[Decimal, Decimal]],
    checksum: int,
) -> dict[str, Any]:
    """A level-2 update as API.md writes it: changed levels ``[price, new_total]``, with a
    removed level's total exactly ``"0"``, and the ``checksum`` of the book after it
    (``trading.checksum``)."""

    def levels(side: Iterable[tuple[Decimal, Decimal]]) -> list[list[str | None]]:
        return [
            [wire.money(price, market.quote.scale), wire.money(total, market.base.scale) if total else "0"]
            for price, total in side
        ]

    return {"market": market.symbol, "sequence": sequence, "bids": levels(bids), "asks": levels(asks),
            "checksum": checksum}


def balance_to_wire(balance: Balance) -> dict[str, str | None]:
    return balance_payload(balance.asset_id, balance.available, balance.locked, balance.asset.scale)


def balance_payload(asset: str, available: Decimal, locked: Decimal, scale: int) -> dict[str, str | None]:
    """A ``balances`` event's payload from the amounts (a writer that knows them reads nothing)."""
    return {
        "asset": asset,
        "total": wire.money(available + locked, scale),
        "available": wire.money(available, scale),
        "locked": wire.money(locked, scale),
    }


def balance_events(pairs: Iterable[tuple[int, str]], market_id: int | None = None) -> list[OutboxEvent]:
    """``balances`` events with the current amounts of each ``(account_id, asset)`` pair.
    Call after the ledger postings, inside their transaction (the rows are locked)."""
    wanted = set(pairs)
    if not wanted:
        return []
    accounts = {a for a, _ in wanted}
    rows = Balance.objects.filter(account_id__in=accounts).select_related("asset").order_by("account_id", "asset_id")
    return [
        OutboxEvent(market_id=market_id, account_id=row.account_id, channel="balances", payload=balance_to_wire(row))
        for row in rows
        if (row.account_id, row.asset_id) in wanted
    ]


def balances_publish(pairs: Iterable[tuple[int, str]], market_id: int | None = None, *, batched: bool = False) -> None:
    """Write ``balances`` events for the ``(account_id, asset)`` pairs a transaction moved
    (``market_id``: the market whose order or trade moved them, if any; ``batched``: one row
    per account, as ``outbox_write``)."""
    outbox_write(balance_events(pairs, market_id), batched=batched)


PRUNE_CHUNK = 5000


def _older_up_to(cutoff: datetime) -> int | None:
    """The id up to which the outbox is older than ``cutoff``, found by bisection over ids
    (each probe one primary-key look-up: the first row at or after an id). Rows are written
    with their time and a rising id, so time rises with id up to the few milliseconds between
    a writer's clock and its insert: the boundary is exact to that. None: nothing is older."""
    events = OutboxEvent.objects.order_by("id").values_list("id", "created_at")
    first = events.first()
    if first is None or first[1] >= cutoff:
        return None
    low, high = first[0], OutboxEvent.objects.order_by("-id").values_list("id", flat=True).first() or first[0]
    while low < high:  # the first row at or after ``low`` is older than the cutoff
        middle = (low + high + 1) // 2
        row = events.filter(id__gte=middle).first()
        if row is not None and row[1] < cutoff:
            low = row[0]
        else:
            high = middle - 1
    return low


def outbox_prune(now: datetime | None = None) -> int:
    """Delete outbox events older than ``BOURSE_WS_RETENTION_S``; return how many. A ``since``
    that points before what is left is refused with ``resync_required``: the counters in
    ``AccountSequence`` still say how far each stream went.

    The events are found by id, not by time: the ids up to the last older event
    (``_older_up_to``), deleted in chunks of consecutive ids, each row's time checked too. So
    the table needs no index on ``created_at``, which every event would write. An event
    written a few milliseconds out of time order at the boundary waits for the next run."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.BOURSE_WS_RETENTION_S)
    last = _older_up_to(cutoff)
    deleted, after = 0, 0
    while last is not None:
        with transaction.atomic(durable=True):
            ids = list(OutboxEvent.objects.filter(id__gt=after, id__lte=last, created_at__lt=cutoff)
                       .order_by("id").values_list("id", flat=True)[:PRUNE_CHUNK])
            if not ids:
                break
            deleted += OutboxEvent.objects.filter(pk__in=ids).delete()[0]
            after = ids[-1]
    return deleted
