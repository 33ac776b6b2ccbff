"""The declarations of a user project: streams, feature groups, labels and feature views.

Everything is checked when it is built, and an error names the definition, the field and the
fix. Durations are text (`"30s"`, `"15m"`, `"1h"`, `"7d"`), seconds or a `timedelta`.

>>> s = Stream("pay", topic="payments", event_time="ts",
...            fields=[Field("merchant", "string"), Field("ts", "timestamp")])
>>> FeatureGroup("m", entity="merchant", stream=s,
...              aggregations=[sum("merchant", window="1h")])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
fti.features.errors.DefinitionError: agg.sum("merchant") in group m: merchant is a string; ...
"""

from __future__ import annotations

import builtins
import hashlib
import inspect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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


def _check_name(kind: str, name: object) -> str:
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
        _check_name("field", self.name)
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
        _check_name("stream", self.name)
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


AggFunction = Literal["count", "sum", "mean", "min", "max", "std", "last", "distinct_count",
                      "time_since_previous"]
_NEEDS_NUMBER = frozenset({"sum", "mean", "min", "max", "std"})
_NO_WINDOW = frozenset({"last", "time_since_previous"})


@dataclass(frozen=True)
class Aggregation:
    """One streaming aggregation over an entity's events by event time; build it with `count`,
    `sum`, `mean`, `min`, `max`, `std`, `last`, `distinct_count` or `time_since_previous`."""

    function: AggFunction
    field: str | None
    window: timedelta | None
    name: str

    def describe(self) -> str:
        """How the user wrote it, for error messages: `agg.sum("amount")`."""
        return f'agg.{self.function}("{self.field}")' if self.field else f"agg.{self.function}()"

    def output_type(self, stream: Stream) -> pa.DataType:
        """The Arrow type of the feature it computes."""
        if self.function in ("count", "distinct_count"):
            return pa.int64()
        if self.function == "last":
            return ARROW_TYPES[stream.field_map()[self.field or ""].type]
        return pa.float64()

    def spec(self) -> dict[str, Any]:
        """The aggregation as plain data (for plan/apply)."""
        return {"function": self.function, "field": self.field, "name": self.name,
                "window": self.window.total_seconds() if self.window is not None else None}


def _aggregation(function: AggFunction, field_name: str | None, window: Duration | None,
                 name: str | None) -> Aggregation:
    where = f'agg.{function}("{field_name}")' if field_name else f"agg.{function}()"
    if function in _NO_WINDOW:
        span = None
    else:
        if window is None:
            raise DefinitionError(f"{where}: needs a window, e.g. window='1h'")
        span = parse_duration(window, f"{where}: window")
        if span <= timedelta(0):
            raise DefinitionError(f"{where}: the window must be longer than 0")
    if name is None:
        suffix = f"_{duration_label(span)}" if span is not None else ""
        name = {"count": f"count{suffix}", "time_since_previous": "secs_since_previous",
                "distinct_count": f"{field_name}_distinct{suffix}"}.get(
                    function, f"{field_name}_{function}{suffix}")
    _check_name(f"feature of {where}", name)
    return Aggregation(function, field_name, span, name)


def count(window: Duration, name: str | None = None) -> Aggregation:
    """Number of the entity's events in the window ending at each event (itself included)."""
    return _aggregation("count", None, window, name)


def sum(field: str, window: Duration, name: str | None = None) -> Aggregation:  # noqa: A001
    """Sum of a numeric field over the window."""
    return _aggregation("sum", field, window, name)


def mean(field: str, window: Duration, name: str | None = None) -> Aggregation:
    """Mean of a numeric field over the window."""
    return _aggregation("mean", field, window, name)


def min(field: str, window: Duration, name: str | None = None) -> Aggregation:  # noqa: A001
    """Smallest value of a numeric field over the window."""
    return _aggregation("min", field, window, name)


def max(field: str, window: Duration, name: str | None = None) -> Aggregation:  # noqa: A001
    """Largest value of a numeric field over the window."""
    return _aggregation("max", field, window, name)


def std(field: str, window: Duration, name: str | None = None) -> Aggregation:
    """Population standard deviation of a numeric field over the window (0 for one event)."""
    return _aggregation("std", field, window, name)


def distinct_count(field: str, window: Duration, name: str | None = None) -> Aggregation:
    """Number of distinct values of a field over the window."""
    return _aggregation("distinct_count", field, window, name)


def last(field: str, name: str | None = None) -> Aggregation:
    """The field's value in the entity's latest event by event time (this one or earlier)."""
    return _aggregation("last", field, None, name)


def time_since_previous(name: str | None = None) -> Aggregation:
    """Seconds since the entity's previous event by event time (null for its first)."""
    return _aggregation("time_since_previous", None, None, name)


@dataclass(frozen=True)
class Transformation:
    """A row-level feature: `function(event)` of one event's fields. The same function runs
    in the feature engine and at inference, so the two cannot disagree."""

    name: str
    function: Callable[[Mapping[str, Any]], Any]
    type: FieldType = "float"

    def __post_init__(self) -> None:
        _check_name("transformation", self.name)
        if self.type not in FIELD_TYPES:
            raise DefinitionError(f"transformation {self.name}: type {self.type!r} is unknown; "
                                  f"use one of {', '.join(FIELD_TYPES)}")

    def spec(self) -> dict[str, Any]:
        """Name, type and a hash of the function's source (a changed body is a change)."""
        try:
            source = inspect.getsource(self.function)
        except (OSError, TypeError):
            source = getattr(self.function, "__qualname__", repr(self.function))
        return {"name": self.name, "type": self.type,
                "function": f"{self.function.__module__}.{self.function.__qualname__}",
                "source_sha256": hashlib.sha256(source.encode()).hexdigest()}


def transformation(type: FieldType = "float", name: str | None = None  # noqa: A002
                   ) -> Callable[[Callable[[Mapping[str, Any]], Any]], Transformation]:
    """Decorator: a function of one event (a dict of its fields) becomes a `Transformation`.

    >>> @transformation("float")
    ... def big(event): return float(event["amount"] > 100)
    >>> big.name, big.function({"amount": 150})
    ('big', 1.0)
    """

    def wrap(function: Callable[[Mapping[str, Any]], Any]) -> Transformation:
        return Transformation(name or function.__name__, function, type)

    return wrap


@dataclass(frozen=True)
class FeatureGroup:
    """Features of one entity computed from one stream, stored online and offline.

    `entity`: the field whose value keys the group (it may differ from the stream's key: the
    engine re-keys). `features`: stream fields copied as they are. `transformations`:
    row-level features. `aggregations`: windows by event time. `allowed_lateness`: an event
    older than the entity's newest event time minus this is rejected (DLQ rule `late`).
    `ttl`: an online value older than this (by event time) is expired, and an entity's state
    is dropped after this long without events. `tags`: feature name -> tags (`pii` keeps a
    feature out of any model). A breaking change needs a new `version`.
    """

    name: str
    entity: str
    stream: Stream
    aggregations: Sequence[Aggregation] = ()
    transformations: Sequence[Transformation] = ()
    features: Sequence[str] = ()
    allowed_lateness: Duration = "5m"
    ttl: Duration = "7d"
    online: bool = True
    offline: bool = True
    tags: Mapping[str, Iterable[str]] = field(default_factory=dict)
    version: int = 1
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("group", self.name)
        where = f"group {self.name}"
        for attr in ("aggregations", "transformations", "features"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        if not isinstance(self.stream, Stream):
            raise DefinitionError(f"{where}: stream must be a Stream, got "
                                  f"{type(self.stream).__name__}")
        fields = self.stream.field_map()
        entity = fields.get(self.entity)
        if entity is None or entity.type not in ("string", "int"):
            raise DefinitionError(f"{where}: entity {self.entity!r} must name a string or int "
                                  f"field of stream {self.stream.name} "
                                  f"({', '.join(fields)})")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise DefinitionError(f"{where}: version must be an int >= 1, got {self.version!r}")
        for agg in self.aggregations:
            if not isinstance(agg, Aggregation):
                raise DefinitionError(f"{where}: aggregations must be built with count(), "
                                      f"sum(), mean(), …; got {agg!r}")
            self._check_aggregation(agg, fields)
        for name in self.features:
            if name not in fields:
                raise DefinitionError(f"{where}: feature {name!r} is not a field of stream "
                                      f"{self.stream.name} ({', '.join(fields)})")
        for t in self.transformations:
            if not isinstance(t, Transformation):
                raise DefinitionError(f"{where}: transformations must be @transformation "
                                      f"functions; got {t!r}")
        names = self.feature_names()
        reserved = {self.entity, "event_time", self.stream.id or "event_id"}
        clashes = sorted({n for n in names if names.count(n) > 1} | (set(names) & reserved))
        if clashes:
            raise DefinitionError(f"{where}: feature names used twice or reserved: {clashes}; "
                                  "give them distinct names with name=...")
        object.__setattr__(self, "allowed_lateness",
                           parse_duration(self.allowed_lateness, f"{where}: allowed_lateness"))
        object.__setattr__(self, "ttl", parse_duration(self.ttl, f"{where}: ttl"))
        tags = {k: frozenset(v) for k, v in dict(self.tags).items()}
        unknown = sorted(set(tags) - set(names))
        if unknown:
            raise DefinitionError(f"{where}: tags name unknown features {unknown}; its "
                                  f"features are {names}")
        for name in self.features:  # a copied field keeps its own tags (e.g. pii)
            tags[name] = tags.get(name, frozenset()) | fields[name].tags
        object.__setattr__(self, "tags", tags)

    def _check_aggregation(self, agg: Aggregation, fields: Mapping[str, Field]) -> None:
        where = f"{agg.describe()} in group {self.name}"
        if agg.field is None:
            return
        source = fields.get(agg.field)
        if source is None:
            raise DefinitionError(f"{where}: {agg.field} is not a field of stream "
                                  f"{self.stream.name} ({', '.join(fields)})")
        if agg.function in _NEEDS_NUMBER and source.type not in NUMERIC:
            raise DefinitionError(f"{where}: {agg.field} is a {source.type}; {agg.function} "
                                  "needs a number (int or float)")

    def feature_names(self) -> list[str]:
        """Feature columns in order: copied fields, transformations, aggregations."""
        return [*self.features, *(t.name for t in self.transformations),
                *(a.name for a in self.aggregations)]

    def feature_types(self) -> dict[str, pa.DataType]:
        """Feature name -> Arrow type."""
        fields = self.stream.field_map()
        types = {name: ARROW_TYPES[fields[name].type] for name in self.features}
        types.update({t.name: ARROW_TYPES[t.type] for t in self.transformations})
        types.update({a.name: a.output_type(self.stream) for a in self.aggregations})
        return types

    @property
    def horizon(self) -> timedelta:
        """How far back state must reach: the longest window plus the allowed lateness."""
        windows = [a.window for a in self.aggregations if a.window is not None]
        lateness = self.allowed_lateness
        assert isinstance(lateness, timedelta)
        return builtins.max(windows, default=timedelta(0)) + lateness

    @property
    def table_name(self) -> str:
        """The offline table: `<name>_v<version>`."""
        return f"{self.name}_v{self.version}"

    def spec(self) -> dict[str, Any]:
        """The group as plain data (for plan/apply)."""
        lateness, ttl = self.allowed_lateness, self.ttl
        assert isinstance(lateness, timedelta) and isinstance(ttl, timedelta)
        return {"name": self.name, "version": self.version, "entity": self.entity,
                "stream": self.stream.name, "features": list(self.features),
                "transformations": [t.spec() for t in self.transformations],
                "aggregations": [a.spec() for a in self.aggregations],
                "allowed_lateness": lateness.total_seconds(), "ttl": ttl.total_seconds(),
                "online": self.online, "offline": self.offline,
                "tags": {k: sorted(v) for k, v in sorted(dict(self.tags).items()) if v},
                "description": self.description}


@dataclass(frozen=True)
class Label:
    """A stream whose events are labels: `value` is the target, the stream's event time is
    the time the features are taken as of, and its other fields carry the entity keys the
    view joins on."""

    name: str
    stream: Stream
    value: str
    version: int = 1

    def __post_init__(self) -> None:
        _check_name("label", self.name)
        fields = self.stream.field_map()
        target = fields.get(self.value)
        if target is None or target.type not in ("int", "float", "bool", "string"):
            raise DefinitionError(f"label {self.name}: value {self.value!r} must name a field "
                                  f"of stream {self.stream.name} ({', '.join(fields)})")

    def spec(self) -> dict[str, Any]:
        """The label as plain data (for plan/apply)."""
        return {"name": self.name, "stream": self.stream.name, "value": self.value,
                "version": self.version}


@dataclass(frozen=True)
class FeatureView:
    """Training data: each label joined, point in time, to the features of `groups` as of the
    label's event time (no older than `ttl`, when given). A group joins on its entity when
    the label's stream carries it, else on its stream's event id (the label names the very
    event it labels, as a fraud label names its transaction). Columns are named
    `<group>__<feature>`."""

    name: str
    label: Label
    groups: Sequence[FeatureGroup]
    features: Sequence[str] | None = None
    ttl: Duration | None = None
    version: int = 1

    def __post_init__(self) -> None:
        _check_name("view", self.name)
        where = f"view {self.name}"
        object.__setattr__(self, "groups", tuple(self.groups))
        if not self.groups:
            raise DefinitionError(f"{where}: needs at least one feature group")
        for group in self.groups:
            if self.join_key(group) is None:
                raise DefinitionError(
                    f"{where}: group {group.name} joins on {group.entity!r} (or the event id "
                    f"{group.stream.id!r}), which the label stream {self.label.stream.name} "
                    "does not carry; add the field there")
        available = {self.column(g, f): g for g in self.groups for f in g.feature_names()}
        if self.features is None:
            chosen = [c for c, g in available.items()
                      if "pii" not in g.tags.get(c.split("__", 1)[1], frozenset())]
        else:
            chosen = list(self.features)
            for column in chosen:
                if column not in available:
                    raise DefinitionError(f"{where}: feature {column!r} is not one of "
                                          f"{sorted(available)}")
                group = available[column]
                if "pii" in group.tags.get(column.split("__", 1)[1], frozenset()):
                    raise DefinitionError(f"{where}: feature {column} is tagged pii; a view "
                                          "may not feed it to a model: drop it from features")
        object.__setattr__(self, "features", tuple(chosen))
        if self.ttl is not None:
            object.__setattr__(self, "ttl", parse_duration(self.ttl, f"{where}: ttl"))

    def join_key(self, group: FeatureGroup) -> str | None:
        """The label field a group joins on: its entity, else its stream's event id."""
        fields = self.label.stream.field_map()
        if group.entity in fields:
            return group.entity
        return group.stream.id if group.stream.id in fields else None

    @staticmethod
    def column(group: FeatureGroup, feature: str) -> str:
        """The training column of a group's feature: `<group>__<feature>`."""
        return f"{group.name}__{feature}"

    def spec(self) -> dict[str, Any]:
        """The view as plain data (for plan/apply)."""
        ttl = self.ttl
        return {"name": self.name, "version": self.version, "label": self.label.name,
                "groups": [g.name for g in self.groups], "features": list(self.features or ()),
                "ttl": ttl.total_seconds() if isinstance(ttl, timedelta) else None}
