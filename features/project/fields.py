"""Fields and streams of a user project, and the durations and names their definitions use.

Durations are text (`"30s"`, `"15m"`, `"1h"`, `"7d"`), seconds or a `timedelta`.

>>> Stream("pay", topic="payments", event_time="ts",
...        fields=[Field("merchant"), Field("ts", "timestamp")]).dlq_topic
'payments.dlq'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import pyarrow as pa

from fti.features.errors import DefinitionError

FieldType = Literal["string", "int", "float", "bool", "timestamp"]
FIELD_TYPES: tuple[str, ...] = ("string", "int", "float", "bool", "timestamp")
NUMERIC: frozenset[str] = frozenset({"int", "float"})
ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
Duration = str | int | float | timedelta
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Duration, where: str) -> timedelta:
    """A duration from text (`"15m"`), seconds or a timedelta; `where` names it in errors.

    >>> parse_duration("90s", "x"), parse_duration(3600, "x")
    (datetime.timedelta(seconds=90), datetime.timedelta(seconds=3600))
    """
    if isinstance(value, timedelta):
        out = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        out = timedelta(seconds=value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        out = timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    else:
        raise DefinitionError(f"{where}: {value!r} is not a duration; write e.g. '30s', '15m', "
                              "'1h', '7d', a number of seconds or a timedelta")
    if out < timedelta(0):
        raise DefinitionError(f"{where}: a duration must not be negative, got {value!r}")
    return out


def duration_label(value: timedelta) -> str:
    """The shortest text for a duration: `1h`, `15m`, `90s`, `1500ms`.

    >>> duration_label(timedelta(hours=24)), duration_label(timedelta(seconds=90))
    ('1d', '90s')
    """
    ms = round(value.total_seconds() * 1000)
    for unit, size in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000),
                       ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def check_name(kind: str, name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise DefinitionError(f"{kind} name {name!r}: use a letter or _ then letters, digits or _")
    return name


@dataclass(frozen=True)
class Field:
    """One field of a stream's events: its type and validation rules.

    `required`: the event must carry a non-null value (rule `required:<name>`). `min`/`max`:
    inclusive range of a number (rule `range:<name>`). `values`: the allowed values (rule
    `enum:<name>`). `tags` (e.g. `{"pii"}`) follow the field into the features copied from it.
    """

    name: str
    type: FieldType = "string"
    required: bool = True
    min: float | None = None
    max: float | None = None
    values: tuple[Any, ...] | None = None
    tags: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        check_name("field", self.name)
        if self.type not in FIELD_TYPES:
            raise DefinitionError(f"field {self.name}: type {self.type!r} is unknown; use one "
                                  f"of {', '.join(FIELD_TYPES)}")
        if (self.min is not None or self.max is not None) and self.type not in NUMERIC:
            raise DefinitionError(f"field {self.name}: min/max need an int or float field, "
                                  f"it is {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise DefinitionError(f"field {self.name}: min {self.min} is above max {self.max}")
        if self.values is not None:
            object.__setattr__(self, "values", tuple(self.values))
        object.__setattr__(self, "tags", frozenset(self.tags))

    def spec(self) -> dict[str, Any]:
        """The field as plain data (for plan/apply)."""
        return {"name": self.name, "type": self.type, "required": self.required,
                "min": self.min, "max": self.max,
                "values": list(self.values) if self.values is not None else None,
                "tags": sorted(self.tags)}


@dataclass(frozen=True)
class Stream:
    """A Kafka topic of JSON events: its fields, event-time field, key and rules.

    `key`: the field the producer keys messages by (None: any). `id`: a field naming each
    event (copied into feature rows, so labels can join on it). `max_future_skew`: events
    further than this in the future are rejected (rule `future`). `dlq_topic` defaults to
    `<topic>.dlq`.
    """

    name: str
    topic: str
    fields: Sequence[Field]
    event_time: str
    key: str | None = None
    id: str | None = None
    max_future_skew: Duration | None = "5m"
    dlq_topic: str | None = None

    def __post_init__(self) -> None:
        check_name("stream", self.name)
        object.__setattr__(self, "fields", tuple(self.fields))
        where = f"stream {self.name}"
        if not isinstance(self.topic, str) or not self.topic:
            raise DefinitionError(f"{where}: topic must be a non-empty string")
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise DefinitionError(f"{where}: fields named twice: "
                                  f"{sorted({n for n in names if names.count(n) > 1})}")
        by_name = self.field_map()
        time_field = by_name.get(self.event_time)
        if time_field is None or time_field.type != "timestamp":
            raise DefinitionError(f"{where}: event_time {self.event_time!r} must name one of "
                                  "its fields of type timestamp, e.g. Field('ts', 'timestamp')")
        for role in ("key", "id"):
            name = getattr(self, role)
            if name is not None and name not in by_name:
                raise DefinitionError(f"{where}: {role} {name!r} is not one of its fields "
                                      f"({', '.join(names)})")
        if self.max_future_skew is not None:
            object.__setattr__(self, "max_future_skew",
                               parse_duration(self.max_future_skew, f"{where}: max_future_skew"))
        if self.dlq_topic is None:
            object.__setattr__(self, "dlq_topic", f"{self.topic}.dlq")

    def field_map(self) -> dict[str, Field]:
        """Fields by name."""
        return {f.name: f for f in self.fields}

    def spec(self) -> dict[str, Any]:
        """The stream as plain data (for plan/apply)."""
        skew = self.max_future_skew
        return {"name": self.name, "topic": self.topic, "event_time": self.event_time,
                "key": self.key, "id": self.id, "dlq_topic": self.dlq_topic,
                "max_future_skew": skew.total_seconds() if isinstance(skew, timedelta) else None,
                "fields": [f.spec() for f in self.fields]}
