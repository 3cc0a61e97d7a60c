"""Statements sent without waiting for each one's answer: psycopg's pipeline mode on Django's
PostgreSQL connection.

Inside ``pipelined()``, ``cursor.execute`` and ``executemany`` queue their statement and return;
PostgreSQL runs them in order, and the client waits only where it reads an answer (a
``fetch*``, ``Pipe.rowcount``) and when the block ends. A transaction of N writes then costs
the round trips of its reads, of psycopg's ``BEGIN`` (which it waits for in pipeline mode too),
of the block's end and of its commit, instead of N + 2. A statement that fails aborts the ones
queued after it up to the next read, and its error is raised there.

What a caller must not do inside: read ``cursor.rowcount`` directly (it is not known until the
answer arrived: use ``Pipe.rowcount``), or call code that does — Django's ``QuerySet.update``
and ``delete`` return it, so keep ORM writes out of a pipelined block. On any other database
the block is a no-op and ``Pipe.rowcount`` the cursor's own.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection


class Pipe:
    """The open pipeline of ``pipelined()`` (``None`` outside PostgreSQL)."""

    def __init__(self, pipeline: Any | None):
        self._pipeline = pipeline

    def rowcount(self, cursor: Any) -> int:
        """The rows ``cursor``'s last statement touched, waiting for its answer if it has not
        arrived yet (``cursor``: a Django cursor, which wraps psycopg's)."""
        if self._pipeline is not None and cursor.cursor.pgresult is None:
            self._pipeline.sync()
        return cursor.rowcount


@contextmanager
def pipelined() -> Iterator[Pipe]:
    """Pipeline mode on the default connection for the block (PostgreSQL; elsewhere nothing)."""
    if connection.vendor != "postgresql":
        yield Pipe(None)
        return
    connection.ensure_connection()
    with connection.connection.pipeline() as pipeline:
        yield Pipe(pipeline)
