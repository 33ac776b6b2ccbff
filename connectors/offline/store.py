"""The offline store: append-only LanceDB tables; every append is a new, readable version.

Rows carry their source (`source_topic`, `source_partition`, `source_offset` and, when known,
`source_topic_id`); `append_once` skips rows whose source is already stored, so a replay after
a crash adds nothing twice, while a recreated topic's records (offsets from 0 again, another
topic id) are new.

>>> import tempfile, pyarrow as pa
>>> store = LanceOfflineStore(tempfile.mkdtemp())
>>> schema = pa.schema([("source_topic", pa.string()), ("source_partition", pa.int32()),
...                     ("source_offset", pa.int64())])
>>> rows = [{"source_topic": "t", "source_partition": 0, "source_offset": i} for i in range(3)]
>>> store.append_once("t", schema, rows)
3
>>> LanceOfflineStore(store.uri).append_once("t", schema, rows[1:] + [
...     {"source_topic": "t", "source_partition": 0, "source_offset": 3}])  # a replay
1
>>> store.count("t"), store.count("missing")
(4, 0)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import lancedb
import pyarrow as pa

from fti.connectors.errors import OfflineTableError

SOURCE_COLUMNS = ["source_topic", "source_partition", "source_offset"]
TOPIC_ID = "source_topic_id"
#: Size of each of LanceDB's caches (index, metadata) per store object.
CACHE_BYTES = 64 * 2**20
#: (topic, topic id or "", partition) and the same with an offset.
Stream = tuple[str, str, int]
Source = tuple[str, str, int, int]


class LanceOfflineStore:
    """A LanceDB directory (local path or object-store URI) holding the offline tables."""

    def __init__(self, uri: str | Path, cache_bytes: int = CACHE_BYTES) -> None:
        self.uri = str(uri)
        # LanceDB's default caches keep every appended version's metadata: a streaming writer
        # grew by ~0.3 MB per append (1.8 GB in a 30-minute soak). Bounded caches keep it flat.
        session = lancedb.Session(
            index_cache_size_bytes=cache_bytes, metadata_cache_size_bytes=cache_bytes
        )
        self._db = lancedb.connect(self.uri, session=session)
        self._tables: dict[str, Any] = {}
        # Per table: the highest offset stored per (topic, partition) when this object first
        # wrote to it. Only rows at or below it can be replays; rows above it are new.
        self._high_marks: dict[str, dict[Stream, int]] = {}

    def _table(self, name: str, schema: pa.Schema) -> Any:
        table = self._tables.get(name)
        if table is None:
            try:
                table = self._db.open_table(name)
            except (ValueError, FileNotFoundError):
                table = self._db.create_table(name, schema=schema, exist_ok=True)
            _add_missing_columns(table, schema)
            self._tables[name] = table
        return table

    def append(self, name: str, schema: pa.Schema, rows: list[dict[str, Any]]) -> None:
        """Append rows (dicts matching `schema`) as one new table version."""
        if rows:
            self._table(name, schema).add(pa.Table.from_pylist(rows, schema=schema))

    def append_once(self, name: str, schema: pa.Schema, rows: list[dict[str, Any]]) -> int:
        """Append the rows whose source is not stored yet; return how many were appended."""
        table = self._table(name, schema)
        marks = self._high_marks.get(name)
        if marks is None:
            marks = self._high_marks[name] = _high_marks(table)
        suspects = [r for r in rows if r["source_offset"] <= marks.get(_stream(r), -1)]
        if suspects:
            stored = _stored_sources(table, suspects)
            rows = [r for r in rows if _source(r) not in stored]
        self.append(name, schema, rows)
        return len(rows)

    def append_table_once(self, name: str, schema: pa.Schema, rows: pa.Table) -> int:
        """`append_once` for rows already in an Arrow table of `schema` (no row of a stream
        above its stored high mark can be a replay, so most batches go in as they are)."""
        if rows.num_rows == 0:
            return 0
        table = self._table(name, schema)
        marks = self._high_marks.get(name)
        if marks is None:
            marks = self._high_marks[name] = _high_marks(table)
        if marks and _may_hold_replays(rows, marks):
            return self.append_once(name, schema, rows.to_pylist())
        table.add(rows)
        return rows.num_rows

    def compact(self, name: str, prune_older_than: timedelta | None = None) -> Compaction:
        """Merge the small fragments that appends leave behind into few large ones.

        Older versions stay readable (time travel, dataset reproducibility) unless
        `prune_older_than` is given: versions older than that are then deleted.
        """
        table = self._db.open_table(name)
        before, version = _fragments(table), table.version
        # lancedb prunes versions older than 7 days when given None; keep them unless asked.
        table.optimize(cleanup_older_than=prune_older_than or timedelta(days=365_000))
        return Compaction(name, before, _fragments(table), version, table.version,
                          table.count_rows())

    def read(self, name: str, version: int | None = None) -> tuple[pa.Table, int]:
        """All rows of table `name` at one version (default: the latest), and that version.

        The read is pinned to one version, so a concurrent writer cannot tear it. Raise
        `OfflineTableError` when the table or the version does not exist.
        """
        try:
            table = self._db.open_table(name)
        except (ValueError, FileNotFoundError) as ex:
            raise OfflineTableError(f"offline table {name!r} not found in {self.uri}") from ex
        pinned = table.version if version is None else version
        try:
            table.checkout(pinned)
        except Exception as ex:  # lancedb raises plain ValueError/OSError/RuntimeError here
            raise OfflineTableError(
                f"offline table {name!r} has no version {pinned}: {ex}"
            ) from ex
        return table.to_arrow(), pinned

    def table_names(self) -> list[str]:
        """Names of the tables in the store."""
        return sorted(self._db.list_tables().tables)

    def count(self, name: str) -> int:
        """Rows in table `name`; 0 when it does not exist yet."""
        try:
            return self._db.open_table(name).count_rows()
        except (FileNotFoundError, ValueError):
            return 0


@dataclass(frozen=True)
class Compaction:
    """What `compact` did to one table."""

    table: str
    fragments_before: int
    fragments_after: int
    version_before: int
    version_after: int
    rows: int


def _fragments(table: Any) -> int:
    return int(table.stats()["fragment_stats"]["num_fragments"])


def _add_missing_columns(table: Any, schema: pa.Schema) -> None:
    """Give a table written by an older fti the nullable columns it lacks (as nulls)."""
    have = set(table.schema.names)
    missing = [f for f in schema if f.name not in have and f.nullable]
    if missing:
        table.add_columns(missing)


def _stream(row: dict[str, Any]) -> Stream:
    return row["source_topic"], row.get(TOPIC_ID) or "", row["source_partition"]


def _source(row: dict[str, Any]) -> Source:
    return (*_stream(row), row["source_offset"])


def _high_marks(table: Any) -> dict[Stream, int]:
    columns = SOURCE_COLUMNS + ([TOPIC_ID] if TOPIC_ID in table.schema.names else [])
    sources = table.search().select(columns).limit(None).to_arrow()
    if sources.num_rows == 0:
        return {}
    keys = [c for c in columns if c != "source_offset"]
    maxima = sources.group_by(keys).aggregate([("source_offset", "max")])
    return {_stream(r): r["source_offset_max"] for r in maxima.to_pylist()}


def _may_hold_replays(rows: pa.Table, marks: dict[Stream, int]) -> bool:
    """Whether any row's offset is at or below its stream's high mark."""
    names = rows.schema.names
    ids = (rows.column(TOPIC_ID).to_pylist() if TOPIC_ID in names else [None] * rows.num_rows)
    lowest: dict[Stream, int] = {}
    for topic, topic_id, partition, offset in zip(
            rows.column("source_topic").to_pylist(), ids,
            rows.column("source_partition").to_pylist(),
            rows.column("source_offset").to_pylist(), strict=True):
        stream = (topic, topic_id or "", partition)
        if offset < lowest.get(stream, offset + 1):
            lowest[stream] = offset
    return any(offset <= marks.get(stream, -1) for stream, offset in lowest.items())


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _stored_sources(table: Any, rows: list[dict[str, Any]]) -> set[Source]:
    """Sources among `rows` that the table already holds (one range query per stream)."""
    stored: set[Source] = set()
    has_id = TOPIC_ID in table.schema.names
    for stream in {_stream(r) for r in rows}:
        topic, topic_id, partition = stream
        offsets = [r["source_offset"] for r in rows if _stream(r) == stream]
        where = (f"source_topic = {_quoted(topic)} AND source_partition = {int(partition)} "
                 f"AND source_offset >= {min(offsets)} AND source_offset <= {max(offsets)}")
        if has_id:
            where += (f" AND source_topic_id = {_quoted(topic_id)}" if topic_id
                      else " AND (source_topic_id IS NULL OR source_topic_id = '')")
        found = (table.search().where(where).select(["source_offset"]).limit(None).to_arrow())
        stored.update((*stream, o) for o in found.column("source_offset").to_pylist())
    return stored
