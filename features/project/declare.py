"""The declarations of a user project that build on its streams: transformations, feature
groups, labels and feature views.

Everything is checked when it is built, and an error names the definition, the field and the
fix.

>>> from fti.features.project import agg
>>> s = Stream("pay", topic="payments", event_time="ts",
...            fields=[Field("merchant", "string"), Field("ts", "timestamp")])
>>> FeatureGroup("m", entity="merchant", stream=s,
...              aggregations=[agg.sum("merchant", window="1h")])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
fti.features.errors.DefinitionError: agg.sum("merchant") in group m: merchant is a string; ...
"""

from __future__ import annotations

import builtins
import hashlib
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pyarrow as pa

from fti.features.errors import DefinitionError
from fti.features.project.agg import NEEDS_NUMBER, Aggregation
from fti.features.project.fields import (
    ARROW_TYPES,
    FIELD_TYPES,
    NUMERIC,
    Duration,
    Field,
    FieldType,
    Stream,
    check_name,
    parse_duration,
)


@dataclass(frozen=True)
class Transformation:
    """A row-level feature: `function(event)` of one event's fields. The same function runs
    in the feature engine and at inference, so the two cannot disagree."""

    name: str
    function: Callable[[Mapping[str, Any]], Any]
    type: FieldType = "float"

    def __post_init__(self) -> None:
        check_name("transformation", self.name)
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
        check_name("group", self.name)
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
        if agg.function in NEEDS_NUMBER and source.type not in NUMERIC:
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
        check_name("label", self.name)
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
    event it labels, as an outcome names the payment it is about). Columns are named
    `<group>__<feature>`."""

    name: str
    label: Label
    groups: Sequence[FeatureGroup]
    features: Sequence[str] | None = None
    ttl: Duration | None = None
    version: int = 1

    def __post_init__(self) -> None:
        check_name("view", self.name)
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
