"""Point-in-time training data of a declared feature view.

Each label row is joined, per group of the view, to the group's row for the same entity
whose event time is the latest at or before the label's event time (among equal times the
one processed last, which knows the most), no older than the view's `ttl`. Replays are
dropped first (`dedupe_by_source`). Columns: the label stream's fields, `event_time`, the
label value, and each feature as `<group>__<feature>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fti.connectors.errors import OfflineTableError
from fti.connectors.offline.store import LanceOfflineStore
from fti.features.errors import TrainingDataError
from fti.features.pit import asof_join
from fti.features.project.declare import FeatureView
from fti.features.project.tables import (
    EVENT_TIME,
    SOURCE_COLUMNS,
    group_schema,
    label_schema,
    label_table,
)


def view_training_table(view: FeatureView, labels: pa.Table,
                        groups: Mapping[str, pa.Table]) -> pa.Table:
    """The view's training rows from its label table and its groups' tables (by table name).

    >>> from fti.features.project import Field, Stream, FeatureGroup, Label, agg
    >>> s = Stream("s", topic="s", event_time="ts", fields=[Field("k"), Field("y", "int"),
    ...            Field("ts", "timestamp")])
    >>> g = FeatureGroup("g", entity="k", stream=s, aggregations=[agg.count(window="1h")])
    >>> v = FeatureView("v", Label("l", s, value="y"), [g])
    >>> view_training_table(v, label_schema(v.label).empty_table(),
    ...                     {g.table_name: group_schema(g).empty_table()}).column_names
    ['k', 'y', 'ts', 'event_time', 'g__count_1h']
    """
    ttl = view.ttl if isinstance(view.ttl, timedelta) else None
    out = _without_sources(dedupe_by_source(labels))
    chosen = set(view.features or ())
    for group in view.groups:
        table = groups.get(group.table_name)
        if table is None:
            raise TrainingDataError(f"view {view.name}: no offline table {group.table_name}; "
                                    "run `fti materialize` or `fti backfill` first")
        wanted = [f for f in group.feature_names() if view.column(group, f) in chosen]
        key = view.join_key(group)
        assert key is not None  # the view checked it
        right = dedupe_by_source(table).select([key, EVENT_TIME, *wanted])
        right = right.rename_columns([key, EVENT_TIME, *(view.column(group, f) for f in wanted)])
        out = asof_join(out, right, by=key, on=EVENT_TIME, tolerance=ttl)
    return out


def _without_sources(table: pa.Table) -> pa.Table:
    return table.drop_columns([c for c in SOURCE_COLUMNS if c in table.column_names])


def read_view(view: FeatureView, offline_location: str) -> pa.Table:
    """`view_training_table` over the latest versions of the offline tables."""
    return read_view_at(view, offline_location)[0]


def read_view_at(view: FeatureView, offline_location: str,
                 versions: Mapping[str, int] | None = None) -> tuple[pa.Table, dict[str, int]]:
    """`view_training_table` over the given versions of the offline tables (default: the
    latest), and the version read of each table (0: the table does not exist yet). Reading
    an earlier dataset's versions rebuilds its rows exactly."""
    store = LanceOfflineStore(offline_location)
    pinned = dict(versions or {})
    read: dict[str, int] = {}
    tables: dict[str, pa.Table] = {}
    wanted = {label_table(view.label): label_schema(view.label),
              **{g.table_name: group_schema(g) for g in view.groups}}
    for name, schema in wanted.items():
        if pinned.get(name) == 0:  # the table did not exist when the versions were read
            tables[name], read[name] = schema.empty_table(), 0
            continue
        tables[name], read[name] = _read(store, name, schema, pinned.get(name))
    labels = tables.pop(label_table(view.label))
    return view_training_table(view, labels, tables), read


def _read(store: LanceOfflineStore, name: str, schema: pa.Schema,
          version: int | None = None) -> tuple[pa.Table, int]:
    try:
        return store.read(name, version)
    except OfflineTableError:
        if version is not None:
            raise
        return schema.empty_table(), 0


def dedupe_by_source(table: pa.Table) -> pa.Table:
    """Keep the first row for each source (topic id, topic, partition, offset), in order.

    Rows of a recreated topic (another topic id) at the same offsets are different records.

    >>> t = pa.table({"source_topic": ["t", "t", "t", "t"], "source_partition": [0, 0, 0, 0],
    ...               "source_offset": [1, 1, 2, 1], "source_topic_id": ["a", "a", "a", "b"],
    ...               "v": [10, 11, 12, 13]})
    >>> dedupe_by_source(t)["v"].to_pylist()
    [10, 12, 13]
    """
    keys = [c for c in SOURCE_COLUMNS if c in table.column_names]
    if table.num_rows < 2 or not keys:
        return table
    # One stable lexsort of integer codes of the source columns (topics are few, so their
    # dictionary codes are cheap); the first row of each run of equal sources is kept, in
    # table order. Without replays, as usual, the table comes back untouched.
    columns = [_codes(table[name]) for name in reversed(keys)]
    order = np.lexsort(columns)
    sorted_columns = [c[order] for c in columns]
    repeat = np.ones(len(order), dtype=bool)
    for column in sorted_columns:
        repeat[1:] &= column[1:] == column[:-1]
    repeat[0] = False
    if not repeat.any():
        return table
    keep = np.ones(table.num_rows, dtype=bool)
    keep[order[repeat]] = False
    return table.filter(pa.array(keep))


def _codes(column: pa.ChunkedArray) -> np.ndarray:
    """Integer codes of a column, equal where the values are equal (nulls one code)."""
    if pa.types.is_integer(column.type):
        return pc.fill_null(column, -1).to_numpy().astype(np.int64, copy=False)
    encoded = pc.dictionary_encode(column.combine_chunks(), null_encoding="encode")
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
