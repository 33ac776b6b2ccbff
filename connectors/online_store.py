"""The online store: the latest features (and 24 h window) per card, in SQLite (WAL).

Upserts are event-time aware: an older event never overwrites a newer value, so replays and
out-of-order events leave the store as if events had arrived in order.

>>> import tempfile, pathlib
>>> store = SqliteOnlineStore(pathlib.Path(tempfile.mkdtemp()) / "online.db")
>>> store.upsert([OnlineRow("card-1", 2.0, "tx-2", {"amount": 5.0}, [])])
>>> store.upsert([OnlineRow("card-1", 1.0, "tx-1", {"amount": 9.0}, [])])  # older: ignored
>>> store.get_many(["card-1", "card-9"])["card-1"].tx_id
'tx-2'
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS online_features (
    entity TEXT PRIMARY KEY,
    event_time REAL NOT NULL,
    tx_id TEXT NOT NULL,
    features TEXT NOT NULL,
    window TEXT NOT NULL,
    updated_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)
)
"""

_UPSERT = """
INSERT INTO online_features (entity, event_time, tx_id, features, window)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT(entity) DO UPDATE SET
    event_time = excluded.event_time, tx_id = excluded.tx_id,
    features = excluded.features, window = excluded.window,
    updated_at = (julianday('now') - 2440587.5) * 86400.0
WHERE excluded.event_time >= online_features.event_time
"""


@dataclass(frozen=True)
class OnlineRow:
    """A card's latest features, the transaction they are as of, and its 24 h window."""

    entity: str
    event_time: float  # epoch seconds
    tx_id: str
    features: dict[str, float]
    window: list[list[Any]]


class SqliteOnlineStore:
    """Online store in one SQLite file; safe to share between threads of one process."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        with self._connection() as conn:
            conn.execute(_SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def upsert(self, rows: Iterable[OnlineRow]) -> None:
        """Write rows in one transaction; per entity, the newest event time wins."""
        params = [
            (r.entity, r.event_time, r.tx_id, json.dumps(r.features), json.dumps(r.window))
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

    def get_many(self, entities: list[str]) -> dict[str, OnlineRow]:
        """Batched read; entities without a row are absent from the result."""
        if not entities:
            return {}
        unique = list(dict.fromkeys(entities))
        marks = ",".join("?" * len(unique))
        cursor = self._connection().execute(
            "SELECT entity, event_time, tx_id, features, window FROM online_features"
            f" WHERE entity IN ({marks})",
            unique,
        )
        return {
            row[0]: OnlineRow(row[0], row[1], row[2], json.loads(row[3]), json.loads(row[4]))
            for row in cursor
        }

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
