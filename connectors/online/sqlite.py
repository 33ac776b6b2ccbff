"""The embedded online store: one SQLite file (WAL), safe to share between threads.


>>> import tempfile, pathlib
>>> store = SqliteOnlineStore(pathlib.Path(tempfile.mkdtemp()) / "online.db", ttl_s=60.0)
>>> store.upsert([OnlineRow("user-1", 2.0, "e-2", {"amount": 5.0}, [])])
>>> store.upsert([OnlineRow("user-1", 1.0, "e-1", {"amount": 9.0}, [])])  # older: ignored
>>> found = store.lookup(["user-1", "user-9"], now=32.0)
>>> one, nine = found["user-1"], found["user-9"]
>>> one.status, one.row.event_id, one.age_s, nine.status
('ok', 'e-2', 30.0, 'missing')
>>> store.lookup(["user-1"], now=100.0)["user-1"].status
'expired'
>>> store.get_many(["user-1"]), store.newest_event_time()  # 1970 is long expired
({}, 2.0)
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from fti.connectors.online.base import (
    Lookup,
    OnlineRow,
    fresh_only,
    json_text,
    judge,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS online_features (
    entity TEXT PRIMARY KEY,
    event_time REAL NOT NULL,
    event_id TEXT NOT NULL,
    features TEXT NOT NULL,
    window TEXT NOT NULL,
    updated_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)
)
"""

_UPSERT = """
INSERT INTO online_features (entity, event_time, event_id, features, window)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT(entity) DO UPDATE SET
    event_time = excluded.event_time, event_id = excluded.event_id,
    features = excluded.features, window = excluded.window,
    updated_at = (julianday('now') - 2440587.5) * 86400.0
WHERE excluded.event_time >= online_features.event_time
"""

_SELECT = ("SELECT entity, event_time, event_id, features, window FROM online_features "
           "WHERE entity IN")
_MAX_PARAMS = 30000  # below SQLite's SQLITE_MAX_VARIABLE_NUMBER (32766)

class SqliteOnlineStore:
    """Online store in one SQLite file; safe to share between threads of one process."""

    def __init__(self, path: Path, ttl_s: float | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.ttl_s = ttl_s
        self._local = threading.local()
        with self._connection() as conn:
            conn.execute(_SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(online_features)")}
            if "tx_id" in columns:  # a file written before the column was named for any event
                conn.execute("ALTER TABLE online_features RENAME COLUMN tx_id TO event_id")

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def upsert(self, rows: Iterable[OnlineRow]) -> None:
        """Write rows in one commit; per entity, the newest event time wins."""
        params = [
            (r.entity, r.event_time, r.event_id, json_text(r.features), json_text(r.window))
            for r in rows
        ]
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(_UPSERT, params)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _read(self, entities: list[str]) -> dict[str, OnlineRow]:
        unique = list(dict.fromkeys(entities))
        conn, found = self._connection(), {}
        for start in range(0, len(unique), _MAX_PARAMS):
            chunk = unique[start : start + _MAX_PARAMS]
            cursor = conn.execute(f"{_SELECT} ({','.join('?' * len(chunk))})", chunk)
            found.update({r[0]: OnlineRow.from_json(*r) for r in cursor})
        return found

    def get_many(self, entities: list[str]) -> dict[str, OnlineRow]:
        """Batched read; entities without a (fresh) row are absent from the result."""
        return fresh_only(self._read(entities), self.ttl_s) if entities else {}

    def lookup(self, entities: list[str], now: float | None = None) -> dict[str, Lookup]:
        """Batched read with a status per entity (see `OnlineStore.lookup`)."""
        return judge(self._read(entities) if entities else {}, entities, self.ttl_s, now)

    def count(self) -> int:
        """Number of entities stored."""
        return self._connection().execute("SELECT COUNT(*) FROM online_features").fetchone()[0]

    def newest_event_time(self) -> float | None:
        """Event time of the freshest row, epoch seconds (for the freshness metric)."""
        cursor = self._connection().execute("SELECT MAX(event_time) FROM online_features")
        return cursor.fetchone()[0]

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
