"""`fti backfill`: historical events from files through the same definitions as the stream.

Rows of Parquet, CSV or JSON-lines files are encoded as the JSON a producer would send and
go through the stream's own decoder and rules, then through each group's engine in file
order, exactly as `fti materialize` would have processed them from Kafka. Rows land in the
groups' offline tables (exactly once: the source is `file:<name>` and the row number, with
the file's sha256 as its topic id, so a rerun adds nothing) and each entity's final state
goes to the online store (event-time aware: newer streamed state is not overwritten).
Label streams fill their label tables.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fti.connectors.offline.store import LanceOfflineStore
from fti.connectors.online import open_online_store
from fti.connectors.online.base import OnlineRow
from fti.features.errors import DefinitionError
from fti.features.project.declare import FeatureGroup, Label
from fti.features.project.decode import Event, Rejection, StreamDecoder
from fti.features.project.engine import EntityState, GroupEngine
from fti.features.project.fields import Stream
from fti.features.project.tables import label_schema, label_table, offline_row
from fti.settings import Settings

BATCH_ROWS = 10_000


@dataclass
class BackfillReport:
    """What a backfill did: rows read, events accepted, rows written per table, rejections."""

    rows: int = 0
    events: int = 0
    written: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)


def read_rows(path: Path) -> Iterator[list[bytes]]:
    """Batches of events of a `.parquet`, `.csv` or `.jsonl`/`.ndjson`/`.json` file, each as
    the JSON bytes the stream's decoder reads. JSON lines pass through as they are (blank
    lines skipped), so a file decodes exactly as the same messages on the topic would, mixed
    representations of a field (a time as text in one line, as a number in the next) included.
    """
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
            yield [_json(row) for row in batch.to_pylist()]
        return
    if suffix in (".jsonl", ".ndjson", ".json"):
        lines: list[bytes] = []
        with path.open("rb") as handle:
            for line in handle:
                if line.strip():
                    lines.append(line.rstrip(b"\r\n"))
                if len(lines) >= BATCH_ROWS:
                    yield lines
                    lines = []
        if lines:
            yield lines
        return
    if suffix != ".csv":
        raise DefinitionError(f"backfill {path}: unknown file type {suffix!r}; use .parquet, "
                              ".csv or .jsonl (JSON lines)")
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
    for batch in table.to_batches(max_chunksize=BATCH_ROWS):
        yield [_json(row) for row in batch.to_pylist()]


def _json(row: dict[str, Any]) -> bytes:
    return orjson.dumps({k: v for k, v in row.items() if v is not None},
                        option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def backfill(settings: Settings, stream: Stream, groups: Sequence[FeatureGroup],
             labels: Sequence[Label], files: Sequence[Path], now: float | None = None,
             on_rows: Callable[[int], None] | None = None) -> BackfillReport:
    """Run the rows of `files` through `stream`'s groups and labels into the stores."""
    decoder = StreamDecoder(stream)
    engines = [GroupEngine(g, settings.state.max_window_entries) for g in groups]
    states: list[dict[str, EntityState]] = [{} for _ in groups]
    newest: list[dict[str, dict[str, Any]]] = [{} for _ in groups]
    offline = LanceOfflineStore(settings.offline_location)
    report = BackfillReport()
    label_schemas = [(label, label_schema(label)) for label in labels]
    clock = now if now is not None else time.time()
    for path in files:
        topic_id = _sha256(path)
        offset = 0
        for rows in read_rows(path):
            sources = [{"source_topic": f"file:{path.name}", "source_partition": 0,
                        "source_offset": offset + i, "source_topic_id": topic_id}
                       for i in range(len(rows))]
            offset += len(rows)
            decoded = decoder.decode_batch(rows, clock)
            report.rows += len(rows)
            out: list[list[dict[str, Any]]] = [[] for _ in groups]
            for x, source in zip(decoded, sources, strict=True):
                if isinstance(x, Rejection):
                    _reject(report, x, source)
                    continue
                report.events += 1
                for g, engine in enumerate(engines):
                    key = engine.entity_of(x)
                    if key is None:
                        continue
                    state, row = engine.apply(states[g].get(key), x)
                    states[g][key] = state
                    if isinstance(row, Rejection):
                        _reject(report, row, source)
                        continue
                    newest_row = newest[g].get(key)
                    if newest_row is None or row["event_time"] >= newest_row["event_time"]:
                        newest[g][key] = row
                    out[g].append(offline_row(engines[g].schema, row, source))
            for g, group in enumerate(groups):
                if group.offline and out[g]:
                    report.written[group.table_name] += offline.append_once(
                        group.table_name, engines[g].schema, out[g])
            for label, schema in label_schemas:
                label_rows = [offline_row(schema, {**x.values, "event_time": x.time}, s)
                              for x, s in zip(decoded, sources, strict=True)
                              if isinstance(x, Event)]
                report.written[label_table(label)] += offline.append_once(
                    label_table(label), schema, label_rows)
            if on_rows is not None:
                on_rows(len(rows))
    _upsert_online(settings, groups, states, newest)
    return report


def _reject(report: BackfillReport, rejection: Rejection, source: dict[str, Any]) -> None:
    report.rejected[rejection.rule] += 1
    if len(report.examples) < 5:
        report.examples.append(f"{source['source_topic']} row {source['source_offset']}: "
                               f"{rejection.reason}")


def _upsert_online(settings: Settings, groups: Sequence[FeatureGroup],
                   states: list[dict[str, EntityState]],
                   newest: list[dict[str, dict[str, Any]]]) -> None:
    if not any(g.online for g in groups):
        return
    store = open_online_store(settings)
    try:
        for g, group in enumerate(groups):
            if not group.online:
                continue
            id_field, names = group.stream.id, group.feature_names()
            store.upsert(
                OnlineRow(entity=f"{group.table_name}:{key}",
                          event_time=float(state.max_time or 0.0),
                          event_id=str(newest[g][key].get(id_field, "")) if id_field else "",
                          features={n: newest[g][key].get(n) for n in names},
                          window=state.to_json())
                for key, state in states[g].items() if key in newest[g])
    finally:
        store.close()

