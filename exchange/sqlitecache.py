"""A Django cache backend on a small SQLite file: the embedded mode's shared cache.

Rate-limit counters and the replay guard need two things from a cache: it is shared by
every process of the deployment, and ``add`` (set-if-absent) and ``incr`` are atomic. In
production Redis gives both. Django's own alternatives for a machine without services do
not: ``LocMemCache`` is per process, and ``FileBasedCache`` and ``DatabaseCache`` implement
``incr`` as get-then-set, so two processes can both read 7 and both write 8.

Here every read-modify-write runs inside ``BEGIN IMMEDIATE``, which takes SQLite's write
lock up front, so it is atomic across threads and processes. The file is separate from the
main database: cache writes never queue behind (or block) the engine's ledger commits, and
losing the file loses nothing durable (``synchronous=OFF``).
"""
from __future__ import annotations

import pickle
import sqlite3
import threading
import time
from pathlib import Path

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    expires REAL  -- epoch seconds; NULL never expires
)
"""
# Expired rows are deleted now and then rather than on every write.
_SWEEP_EVERY = 1000


class SQLiteCache(BaseCache):
    def __init__(self, location, params):
        super().__init__(params)
        self._path = Path(location)
        self._local = threading.local()
        self._writes = 0

    # --- connection ---------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self._path, timeout=20, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute(_SCHEMA)
            self._local.conn = conn
        return conn

    def _write(self, fn):
        """Run ``fn(conn, now)`` in one IMMEDIATE transaction (atomic across processes)."""
        conn = self._conn()
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn, now)
            self._writes += 1
            if self._writes % _SWEEP_EVERY == 0:
                conn.execute("DELETE FROM cache WHERE expires IS NOT NULL AND expires <= ?", (now,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return result

    def _expiry(self, timeout, now):
        # BaseCache gives an absolute epoch time (None: never); 0 means already expired.
        return self.get_backend_timeout(timeout)

    @staticmethod
    def _live(conn, key, now):
        row = conn.execute("SELECT value, expires FROM cache WHERE key = ?", (key,)).fetchone()
        if row is None or (row[1] is not None and row[1] <= now):
            return None
        return row

    # --- the cache API ------------------------------------------------------------------
    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        key = self.make_and_validate_key(key, version=version)
        blob = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)

        def op(conn, now):
            if self._live(conn, key, now) is not None:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO cache (key, value, expires) VALUES (?, ?, ?)",
                (key, blob, self._expiry(timeout, now)),
            )
            return True

        return self._write(op)

    def get(self, key, default=None, version=None):
        key = self.make_and_validate_key(key, version=version)
        row = self._live(self._conn(), key, time.time())
        return default if row is None else pickle.loads(row[0])

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        key = self.make_and_validate_key(key, version=version)
        blob = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        self._write(
            lambda conn, now: conn.execute(
                "INSERT OR REPLACE INTO cache (key, value, expires) VALUES (?, ?, ?)",
                (key, blob, self._expiry(timeout, now)),
            )
        )

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        key = self.make_and_validate_key(key, version=version)

        def op(conn, now):
            if self._live(conn, key, now) is None:
                return False
            conn.execute("UPDATE cache SET expires = ? WHERE key = ?", (self._expiry(timeout, now), key))
            return True

        return self._write(op)

    def delete(self, key, version=None):
        key = self.make_and_validate_key(key, version=version)
        return self._write(lambda conn, now: conn.execute("DELETE FROM cache WHERE key = ?", (key,)).rowcount > 0)

    def has_key(self, key, version=None):
        key = self.make_and_validate_key(key, version=version)
        return self._live(self._conn(), key, time.time()) is not None

    def incr(self, key, delta=1, version=None):
        key = self.make_and_validate_key(key, version=version)

        def op(conn, now):
            row = self._live(conn, key, now)
            if row is None:
                raise ValueError(f"Key '{key}' not found")
            value = pickle.loads(row[0]) + delta
            conn.execute("UPDATE cache SET value = ? WHERE key = ?", (pickle.dumps(value, pickle.HIGHEST_PROTOCOL), key))
            return value

        return self._write(op)

    def clear(self):
        self._write(lambda conn, now: conn.execute("DELETE FROM cache"))

    def close(self, **kwargs):
        # Connections are per thread and reused across requests; Django calls close() at
        # the end of every request, where reopening would cost more than it saves.
        pass
