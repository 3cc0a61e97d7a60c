"""The read side of the outbox: what a transport reads back after an announcement, to replay
a stream from a sequence, to fill a gap, or to tail the events of some accounts.

A row may hold one stream's events of a whole engine batch or settlement chunk (its
``payload`` a list, its ``sequence`` the last one's: ``trading.outbox.services.batch_rows``).
Every function here returns events, never rows: ``expand`` turns a batched row back into its
events, each with its own sequence and the row's id, so the transports see one event per
dict, in stream order, whatever the writer batched."""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q

from exchange import errors

from ..models import AccountSequence, OutboxEvent

EVENT_FIELDS = ("id", "market_id", "account_id", "channel", "sequence", "payload")


def expand(rows: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """The events of outbox rows, in order: a batched row (a list payload) becomes one event
    per element, with the row's id; a private stream's element ``i`` of ``n`` has sequence
    ``row sequence - n + 1 + i``, a book update the sequence in its payload, a trade none;
    ``part`` is the element's place in its row (0 for a plain row)."""
    for row in rows:
        payload = row["payload"]
        if not isinstance(payload, list):
            yield dict(row)
            continue
        last, count = row.get("sequence"), len(payload)
        for index, item in enumerate(payload):
            event = {**row, "payload": item, "part": index}
            if "sequence" in row:
                if row["channel"] == "book":
                    event["sequence"] = item["sequence"]
                elif last is not None:
                    event["sequence"] = last - count + 1 + index
            yield event


def private_last(account_id: int, channel: str) -> int:
    """The sequence of the account's latest event on ``channel`` (0 before the first)."""
    row = AccountSequence.objects.filter(account_id=account_id, channel=channel).values_list("last", flat=True).first()
    return row or 0


def events_by_id(ids) -> list[dict]:
    return list(expand(OutboxEvent.objects.filter(pk__in=list(ids)).order_by("id").values(*EVENT_FIELDS)))


def events_after_id(after_id: int, market_ids, account_ids, limit: int = 5000) -> list[dict]:
    """The relay's periodic re-read: events of watched streams with ``id > after_id``."""
    where = Q(pk__in=[])
    if market_ids:
        where |= Q(account__isnull=True, market_id__in=list(market_ids))
    if account_ids:
        where |= Q(account_id__in=list(account_ids))
    return list(expand(OutboxEvent.objects.filter(where, id__gt=after_id).order_by("id").values(*EVENT_FIELDS)[:limit]))


def latest_event_id() -> int:
    """The highest event id written so far (0 before the first)."""
    return OutboxEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def book_events(market_id: int, after: int, before: int | None = None) -> list[dict]:
    """Book updates with ``after < sequence < before``, in sequence order (gap fill)."""
    rows = OutboxEvent.objects.filter(market_id=market_id, channel="book", sequence__gt=after)  # a row's last
    limit = settings.BOURSE_WS_MAX_REPLAY
    return _between(rows.order_by("sequence").values(*EVENT_FIELDS)[:limit], after, before)[:limit]


def _between(rows: Iterable[Mapping[str, Any]], after: int, before: int | None) -> list[dict[str, Any]]:
    """The events of ``rows`` with ``after < sequence < before``. Rows are selected by their
    last sequence, so the first may start at or below ``after``; at most the last may reach
    ``before``."""
    return [e for e in expand(rows) if e["sequence"] > after and (before is None or e["sequence"] < before)]


def private_events(account_id: int, channel: str, after: int, before: int | None = None) -> list[dict]:
    """The account's events on ``channel`` with ``after < sequence < before``, in order."""
    rows = OutboxEvent.objects.filter(account_id=account_id, channel=channel, sequence__gt=after)  # a row's last
    limit = settings.BOURSE_WS_MAX_REPLAY + 1
    return _between(rows.order_by("sequence").values(*EVENT_FIELDS)[:limit], after, before)[:limit]


def private_replay(account_id: int, channel: str, since: int) -> tuple[int, list[dict]]:
    """``(last, events after since)`` for a resuming subscriber, or ``ResyncRequired`` when
    part of what it missed was pruned (or it is more than one replay behind)."""
    last = private_last(account_id, channel)
    if since > last:
        raise errors.ValidationError.field(
            "since", "ahead", f"since {since} is ahead of the {channel} stream, which is at {last}.", last=last
        )
    if since == last:
        return last, []
    rows = private_events(account_id, channel, since)
    if not rows or rows[0]["sequence"] != since + 1 or len(rows) > settings.BOURSE_WS_MAX_REPLAY:
        raise errors.ResyncRequired(
            f"{channel} events after {since} are no longer all retained (retention "
            f"{settings.BOURSE_WS_RETENTION_S} s, at most {settings.BOURSE_WS_MAX_REPLAY} replayed); "
            f"read the current state over REST and subscribe without since.",
            channel=channel, last=last,
        )
    return last, rows


# PostgreSQL: a function (migration trading/0013), whose SET clause gives its query a generic plan
# kept for the connection's life — one index range per (account, market) above the market's
# floor; as a prepared statement with these parameters it was planned anew on every run.
TAIL_SQL = "SELECT * FROM bourse_outbox_tail(%s::bigint[], %s::bigint[], %s::bigint[], %s::text[])"


def account_events_after(accounts, floors: dict[int, int], channels=("orders", "fills")) -> list[Mapping[str, Any]]:
    """Events on ``channels`` of ``accounts`` above each market's floor (``floors``: market id
    -> last id already read), in id order: the FIX report reader's tail. Markets missing from
    ``floors`` are not read. Each market is one range of the (account, market, id) index.

    The reader runs this after every engine batch of any market, so on PostgreSQL it is one
    statement text whatever the number of markets (the floors travel as two arrays), a
    function planned once per connection (``TAIL_SQL``), and its rows are read without the
    ORM, which cost eight times the query itself. The payload is decoded as ``JSONField``
    decodes it."""
    if not floors or not accounts:
        return []
    if connection.vendor != "postgresql":
        condition = Q()
        for market_id, floor in floors.items():
            condition |= Q(market_id=market_id, id__gt=floor)
        return list(expand(
            OutboxEvent.objects.filter(condition, channel__in=channels, account_id__in=list(accounts))
            .order_by("id").values("id", "market_id", "account_id", "channel", "payload")
        ))
    with connection.cursor() as cursor:
        cursor.execute(TAIL_SQL, [list(floors), list(floors.values()), list(accounts), list(channels)])
        rows = cursor.fetchall()
    return list(expand(
        {"id": id_, "market_id": market_id, "account_id": account_id, "channel": channel, "payload": json.loads(payload)}
        for id_, market_id, account_id, channel, payload in rows
    ))


def market_ids() -> list[int]:
    """Every market's id (the FIX report reader keeps a floor per market)."""
    from trading.models import Market

    return list(Market.objects.values_list("id", flat=True))

