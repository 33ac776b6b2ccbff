"""Offline tables of a project: one per feature group version, one per label version.

A group's table holds one row per accepted event: the entity, the event id (when the stream
names one), `event_time`, the features, and the source columns that make appends exactly
once. A label's table holds the label stream's fields, `event_time` and the source columns.

>>> from fti.features.project import Field, Stream, FeatureGroup, agg
>>> s = Stream("p", topic="p", event_time="ts", id="pid", fields=[Field("pid"), Field("m"),
...            Field("ts", "timestamp")])
>>> group_schema(FeatureGroup("g", entity="m", stream=s, aggregations=[agg.count(window="1h")])
...              ).names[:4]
['m', 'pid', 'event_time', 'count_1h']
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from fti.features.project.declare import FeatureGroup, Label
from fti.features.project.fields import ARROW_TYPES

EVENT_TIME = "event_time"
_TIME = pa.timestamp("us", tz="UTC")
#: Columns every offline row carries so that a replay repeats, not duplicates, it. The topic
#: id tells apart incarnations of a topic that was recreated (offsets restart at 0); rows
#: written before it existed have none.
SOURCE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("source_topic", pa.string(), nullable=False),
    pa.field("source_partition", pa.int32(), nullable=False),
    pa.field("source_offset", pa.int64(), nullable=False),
    pa.field("source_topic_id", pa.string()),
)
#: Columns that identify where an offline row came from; a replay repeats them.
SOURCE_COLUMNS: tuple[str, ...] = tuple(field.name for field in SOURCE_FIELDS)


def group_schema(group: FeatureGroup) -> pa.Schema:
    """The offline schema of a group."""
    fields = group.stream.field_map()
    columns = [pa.field(group.entity, ARROW_TYPES[fields[group.entity].type], nullable=False)]
    stream_id = group.stream.id
    if stream_id is not None and stream_id != group.entity:
        columns.append(pa.field(stream_id, ARROW_TYPES[fields[stream_id].type]))
    columns.append(pa.field(EVENT_TIME, _TIME, nullable=False))
    columns += [pa.field(name, kind) for name, kind in group.feature_types().items()]
    return pa.schema([*columns, *SOURCE_FIELDS])


def label_table(label: Label) -> str:
    """The offline table of a label: `label_<name>_v<version>`."""
    return f"label_{label.name}_v{label.version}"


def label_schema(label: Label) -> pa.Schema:
    """The offline schema of a label: its stream's fields, `event_time`, source columns."""
    columns = [pa.field(f.name, ARROW_TYPES[f.type]) for f in label.stream.fields
               if f.name != EVENT_TIME]
    return pa.schema([*columns, pa.field(EVENT_TIME, _TIME, nullable=False), *SOURCE_FIELDS])


def to_datetime(seconds: float | None) -> datetime | None:
    """Epoch seconds as an aware UTC datetime (None stays None)."""
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def offline_row(schema: pa.Schema, row: Mapping[str, Any],
                source: Mapping[str, Any]) -> dict[str, Any]:
    """A feature or label row ready for `schema`: times as datetimes, source columns added."""
    out = dict(row)
    for name in _time_columns(schema):
        if name in out:
            out[name] = to_datetime(out[name])
    out.update(source)
    return out


@functools.lru_cache(maxsize=256)
def _time_columns(schema: pa.Schema) -> tuple[str, ...]:
    return tuple(f.name for f in schema if f.type == _TIME)


def offline_table(schema: pa.Schema, rows: Sequence[Mapping[str, Any]],
                  sources: Mapping[str, Sequence[Any]]) -> pa.Table:
    """`rows` as one Arrow table of `schema`, built a column at a time, with the source
    columns given as lists (one value per row); the same values `offline_row` gives.

    >>> s = pa.schema([("m", pa.string()), (EVENT_TIME, _TIME), ("source_offset", pa.int64())])
    >>> t = offline_table(s, [{"m": "a", EVENT_TIME: 1.5}], {"source_offset": [7]})
    >>> t.to_pylist() == [offline_row(s, {"m": "a", EVENT_TIME: 1.5}, {"source_offset": 7})]
    True
    """
    columns = []
    for f in schema:
        given = sources.get(f.name)
        values = list(given) if given is not None else [r.get(f.name) for r in rows]
        if f.type == _TIME:
            columns.append(_time_array(values))
        else:
            columns.append(pa.array(values, type=f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _time_array(seconds: list[float | None]) -> pa.Array:
    """Epoch seconds as microsecond timestamps, rounded as `datetime.fromtimestamp` rounds
    (whole seconds, then the fraction to the nearest microsecond, ties to even)."""
    if any(x is None for x in seconds):
        return pa.array([to_datetime(x) for x in seconds], type=_TIME)
    x = np.asarray(seconds, dtype=np.float64)
    whole = np.trunc(x)
    micros = whole.astype(np.int64) * 1_000_000 + np.round((x - whole) * 1e6).astype(np.int64)
    return pa.array(micros, type=pa.int64()).cast(_TIME)
