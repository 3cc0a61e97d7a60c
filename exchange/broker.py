"""The embedded mode's Celery broker: kombu's SQLAlchemy transport on its own SQLite file.

Why not kombu's filesystem transport: a sender creates the message file and then writes it,
so a worker listing the folder in between reads an empty or half-written file, fails with
``JSONDecodeError`` and the message is lost. Here a message is a row: it is inserted in one
transaction (invisible to the worker until committed, whole) and taken by the worker in
``BEGIN IMMEDIATE`` (select the oldest visible row, mark it taken, commit), so two readers
can never take one message and no reader ever sees half of one.

What this module adds to kombu's transport:
- the SQLite file runs in WAL mode (``synchronous=NORMAL``, as the main embedded database)
  with a 30 s busy timeout, so senders (web, engine, beat)
  queue behind each other instead of failing with "database is locked";
- transport options (``polling_interval``: how often an idle worker looks for work) are
  not passed on to ``create_engine`` as kombu would, which refuses them;
- a message is inserted with one Core statement (kombu's ORM path costs ~5 ms a message);
- a message's row is deleted when a worker takes it (kombu only marks it taken, so the
  table, and the worker's scan of it, would grow without end).
"""
from __future__ import annotations

import json
from queue import Empty

from kombu.transport import sqlalchemy as kombu_sqla
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.exc import OperationalError

BUSY_TIMEOUT_S = 30


class Channel(kombu_sqla.Channel):

    def __init__(self, *args, **kwargs):
        self._queue_ids: dict[str, int] = {}
        super().__init__(*args, **kwargs)

    def _engine_from_config(self):
        engine = create_engine(self.connection.client.hostname, connect_args={"timeout": BUSY_TIMEOUT_S})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # As the main embedded database: a commit survives the process dying at once; only
            # an operating-system crash can lose the last commits (no fsync per message).
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine

    def _put(self, queue, message, **kwargs):  # type: ignore[override]  # kombu names it message and payload
        # kombu's own _put looks the queue up and goes through the ORM's unit of work for
        # every message (~5 ms); the engine sends one after each batch with trades. The same
        # row, inserted with one Core statement and the queue id remembered: ~1 ms.
        queue_id = self._queue_id(queue)
        table = self.message_cls.__table__
        try:
            self.session.execute(table.insert().values(
                queue_id=queue_id, payload=json.dumps(message), visible=True, version=1,
            ))  # `timestamp` stays NULL until taken, as kombu's ORM insert leaves it (FIFO by id)
            self.session.commit()
        except OperationalError:
            self.session.rollback()
            raise

    def _get(self, queue, timeout=None):
        # kombu's own _get marks the row taken and keeps it forever (the table, and this scan,
        # would grow without end). A taken message is never read from the table again — an
        # unacknowledged one is held by the worker and put back as a new row if the worker
        # stops — so it is deleted in the same immediate transaction that takes it.
        queue_id = self._queue_id(queue)
        table = self.message_cls.__table__
        self.session.execute(text("BEGIN IMMEDIATE TRANSACTION"))
        try:
            row = self.session.execute(
                select(table.c.id, table.c.payload)
                .where(table.c.queue_id == queue_id, table.c.visible == True)  # noqa: E712
                .order_by(table.c.timestamp, table.c.id)
                .limit(1)
            ).first()
            if row is None:
                raise Empty()
            self.session.execute(table.delete().where(table.c.id == row.id))
        except BaseException:
            self.session.rollback()
            raise
        self.session.commit()
        return json.loads(row.payload)

    def _queue_id(self, queue: str) -> int:
        queue_id = self._queue_ids.get(queue)
        if queue_id is None:
            queue_id = self._queue_ids[queue] = self._get_or_create(queue).id
        return queue_id


class Transport(kombu_sqla.Transport):
    Channel = Channel
