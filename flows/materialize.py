"""`fti materialize`: one generic, batch-at-a-time feature engine for every applied group.

Per stream of the project: read each partition's batch as one item, decode and validate the
whole batch (`fti.features.project.decode`), dead-letter what is invalid with its rule; per
group on that stream, split the batch by entity (Bytewax routes each entity to its worker,
so a group keyed by another field than the topic's key is re-keyed here), update the
entity's window state once per batch (`fti.features.project.engine`), then append the rows
offline (exactly once by source) and upsert the entity's latest features and state online.
Label streams go to their offline tables. Events late for a group go to the DLQ (rule
`late`). Recovery and multi-process clusters work as for every flow.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from fti import metrics
from fti.connectors.kafka.reader import KafkaRecord
from fti.connectors.offline.store import LanceOfflineStore
from fti.connectors.online import open_online_store
from fti.connectors.online.base import OnlineRow
from fti.features.project.declare import FeatureGroup, Label
from fti.features.project.decode import Event, Rejection, StreamDecoder
from fti.features.project.engine import EntityState, GroupEngine
from fti.features.project.fields import Stream
from fti.features.project.tables import (
    group_schema,
    label_schema,
    label_table,
    offline_row,
    offline_table,
)
from fti.flows.expiry import expiring_map
from fti.flows.records import Rejected, to_dlq
from fti.flows.sinks import KafkaProducerSink
from fti.flows.sources import KafkaPartitionSource
from fti.settings import Settings

if TYPE_CHECKING:
    from fti.features.project.loader import Project

FLOW = "materialize"
#: Records per source batch: more events per entity share one state update and upsert, and
#: a read returns what is there without waiting for a full batch.
BATCH_RECORDS = 5000
Decoded = list[tuple[KafkaRecord, Event | Rejection]]
#: What a group's stateful step emits per entity and batch: rows with their sources, events
#: rejected as late, and the entity's state (JSON-able) after the batch.
GroupOut = tuple[list[tuple[dict[str, Any], KafkaRecord]], list[Rejected], list[Any] | None]


def decode_batch(decoder: StreamDecoder) -> Any:
    """The step that decodes one batch of records; never raises for any bytes."""

    def step(batch: list[KafkaRecord]) -> Decoded:
        now = time.time()
        return [(r, x) for r, x in zip(batch, decoder.decode_batch([r.value for r in batch], now),
                                        strict=True)]

    return step


def rejections(batch: Decoded) -> list[Rejected]:
    """The records of a batch that failed decoding or validation."""
    return [Rejected(r, x.reason, x.rule) for r, x in batch if isinstance(x, Rejection)]


def by_entity(engine: GroupEngine) -> Any:
    """The step that splits a decoded batch into (entity, [(record, event)…]) in order."""

    def step(batch: Decoded) -> list[tuple[str, list[tuple[KafkaRecord, Event]]]]:
        groups: dict[str, list[tuple[KafkaRecord, Event]]] = defaultdict(list)
        for record, x in batch:
            if isinstance(x, Event):
                key = engine.entity_of(x)
                if key is not None:
                    groups[key].append((record, x))
        return list(groups.items())

    return step


def group_step(engine: GroupEngine) -> Any:
    """The stateful step: one entity's events of one batch through its window state."""

    def step(state: EntityState | None, items: list[tuple[KafkaRecord, Event]]
             ) -> tuple[EntityState | None, GroupOut]:
        rows: list[tuple[dict[str, Any], KafkaRecord]] = []
        late: list[Rejected] = []
        for record, event in items:
            try:
                state, row = engine.apply(state, event)
            except Exception as ex:  # one record must never stop the flow
                late.append(Rejected(record, f"{type(ex).__name__}: {ex}", "exception"))
                continue
            if isinstance(row, Rejection):
                late.append(Rejected(record, row.reason, row.rule))
            else:
                rows.append((row, record))
        return state, (rows, late, None if state is None else state.to_json())

    return step


class _GroupStorePartition(StatelessSinkPartition[tuple[str, GroupOut]]):
    def __init__(self, settings: Settings, group: FeatureGroup) -> None:
        self.group = group
        self._schema = group_schema(group)
        self._features = group.feature_names()
        self._offline = LanceOfflineStore(settings.offline_location) if group.offline else None
        self._online = open_online_store(settings) if group.online else None

    def write_batch(self, items: list[tuple[str, GroupOut]]) -> None:
        group, id_field = self.group, self.group.stream.id
        if self._offline is not None:
            rows = [row for _, (batch, _, _) in items for row, _ in batch]
            if rows:
                start = time.perf_counter()
                table = offline_table(self._schema, rows, KafkaRecord.source_column_lists(
                    [record for _, (batch, _, _) in items for _, record in batch]))
                written = self._offline.append_table_once(group.table_name, self._schema, table)
                metrics.FEATURE_WRITE_SECONDS.labels("offline").observe(
                    time.perf_counter() - start)
                metrics.FEATURE_ROWS.labels(group.table_name).inc(written)
        if self._online is not None:
            online = []
            for key, (batch, _, state) in items:
                if not batch or state is None:
                    continue
                newest = max(batch, key=lambda item: item[0]["event_time"])[0]
                online.append(OnlineRow(
                    entity=f"{group.table_name}:{key}",
                    event_time=float(state[0][0]),
                    event_id=str(newest.get(id_field, "")) if id_field else "",
                    features={name: newest.get(name) for name in self._features},
                    window=state,
                ))
            if online:
                start = time.perf_counter()
                self._online.upsert(online)
                metrics.FEATURE_WRITE_SECONDS.labels("online").observe(time.perf_counter() - start)

    def close(self) -> None:
        if self._online is not None:
            self._online.close()


class GroupStoreSink(DynamicSink[tuple[str, GroupOut]]):
    """Writes a group's rows offline (exactly once) and its entities' state online."""

    def __init__(self, settings: Settings, group: FeatureGroup) -> None:
        self.settings, self.group = settings, group

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _GroupStorePartition:
        return _GroupStorePartition(self.settings, self.group)


class _LabelPartition(StatelessSinkPartition[list[dict[str, Any]]]):
    def __init__(self, settings: Settings, label: Label) -> None:
        self.table, self.schema = label_table(label), label_schema(label)
        self._offline = LanceOfflineStore(settings.offline_location)

    def write_batch(self, items: list[list[dict[str, Any]]]) -> None:
        rows = [row for batch in items for row in batch]
        if rows:
            metrics.FEATURE_ROWS.labels(self.table).inc(
                self._offline.append_once(self.table, self.schema, rows))


class LabelTableSink(DynamicSink[list[dict[str, Any]]]):
    """Appends a label stream's valid events to its offline table, exactly once."""

    def __init__(self, settings: Settings, label: Label) -> None:
        self.settings, self.label = settings, label

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _LabelPartition:
        return _LabelPartition(self.settings, self.label)


def label_rows(label: Label) -> Any:
    """The step that turns a decoded batch into the label table's rows."""
    schema = label_schema(label)

    def step(batch: Decoded) -> list[dict[str, Any]]:
        return [offline_row(schema, {**x.values, "event_time": x.time}, r.source_columns())
                for r, x in batch if isinstance(x, Event)]

    return step


def _streams(project: Project) -> list[Stream]:
    used = {g.stream.name: g.stream for g in project.groups.values()}
    used.update({label.stream.name: label.stream for label in project.labels.values()})
    return [used[name] for name in sorted(used)]


def _flatten_late(item: tuple[str, GroupOut]) -> Iterable[Rejected]:
    return item[1][1]


#: The cyclic collector's thresholds while the engine runs. Its state is a great many small,
#: long-lived lists and dicts, and the rows it makes are freed by reference counting; with
#: Python's defaults (700, 10, 10) the collector ran every 700 allocations and took ~25 % of
#: the flow's time (50,000 events in process: 135 against 103 µs/event).
GC_THRESHOLDS = (100_000, 50, 100)


def get_flow(settings: Settings, project: Project,
             stop: threading.Event | None = None) -> Dataflow:
    """The dataflow materializing every group and label of `project` (sets the process's
    `GC_THRESHOLDS`)."""
    gc.set_threshold(*GC_THRESHOLDS)
    flow = Dataflow(FLOW)
    for stream in _streams(project):
        metrics.DLQ_EVENTS.labels(FLOW, stream.topic)  # exported at 0 before the first one
        raw = op.input(f"{stream.name}_in", flow, KafkaPartitionSource(
            settings.kafka, [stream.topic], stop, batch_size=BATCH_RECORDS, flow=FLOW,
            batched=True))
        decoded = op.map(f"{stream.name}_decode", raw, decode_batch(StreamDecoder(stream)))
        bad = [op.flat_map(f"{stream.name}_invalid", decoded, rejections)]
        for group in sorted(project.groups.values(), key=lambda g: g.name):
            if group.stream.name != stream.name:
                continue
            engine = GroupEngine(group, settings.state.max_window_entries)
            keyed = op.flat_map(f"{group.name}_by_entity", decoded, by_entity(engine))
            ttl = group.ttl
            assert isinstance(ttl, timedelta)
            out = expiring_map(f"{group.name}_state", keyed,
                               group_step(engine), ttl.total_seconds())
            op.output(f"{group.name}_store", out, GroupStoreSink(settings, group))
            bad.append(op.flat_map(f"{group.name}_late", out, _flatten_late))
        for label in sorted(project.labels.values(), key=lambda label: label.name):
            if label.stream.name == stream.name:
                rows = op.map(f"label_{label.name}_rows", decoded, label_rows(label))
                op.output(f"label_{label.name}_store", rows, LabelTableSink(settings, label))
        rejected = op.merge(f"{stream.name}_rejected", *bad)
        dlq = op.map(f"{stream.name}_to_dlq", rejected, to_dlq(FLOW, stream.dlq_topic or ""))
        op.output(f"{stream.name}_dlq", dlq, KafkaProducerSink(settings.kafka))
    return flow

