"""Feature groups: declared, versioned tables of features keyed by entity and event time.

A `FeatureGroup` says what one offline/online table holds: entity keys, the event-time
column, typed features, and the source columns (`source_topic`, `source_partition`,
`source_offset`) that make replays idempotent. `check_evolution` decides whether a changed
declaration may keep its version or must bump it.

>>> import pyarrow as pa
>>> group = FeatureGroup("cards", 1, ("card_id",), "event_time",
...                      (Feature("spend_24h", pa.float64()),))
>>> group.table_name, group.schema().names[:3]
('cards_v1', ['card_id', 'event_time', 'spend_24h'])
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

import pyarrow as pa

from fti.features.errors import FeatureGroupError, SchemaEvolutionError

#: Tag of a feature that is a secondary key (e.g. ``card_id`` in a group keyed by ``tx_id``):
#: stored next to the entity keys, usable as a join key, never a model input by default.
KEY_TAG = "key"
#: Columns every offline row carries so that a replay repeats, not duplicates, it. The topic
#: id tells apart incarnations of a topic that was recreated (offsets restart at 0); rows
#: written before it existed have none.
SOURCE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("source_topic", pa.string(), nullable=False),
    pa.field("source_partition", pa.int32(), nullable=False),
    pa.field("source_offset", pa.int64(), nullable=False),
    pa.field("source_topic_id", pa.string()),
)
EVENT_TIME_TYPE = pa.timestamp("us", tz="UTC")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise FeatureGroupError(
            f"{kind} name must be a letter or _ followed by letters, digits or _, got {name!r}"
        )


@dataclass(frozen=True)
class Feature:
    """One typed column of a feature group.

    >>> Feature("amount", pa.float64(), tags={"money"}).tags
    frozenset({'money'})
    """

    name: str
    dtype: pa.DataType
    nullable: bool = True
    tags: frozenset[str] = field(default_factory=frozenset)
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("feature", self.name)
        if not isinstance(self.dtype, pa.DataType):
            raise FeatureGroupError(
                f"feature {self.name!r}: dtype must be a pyarrow DataType (e.g. pa.float64()), "
                f"got {type(self.dtype).__name__}"
            )
        object.__setattr__(self, "tags", frozenset(self.tags))

    def arrow_field(self) -> pa.Field:
        """The pyarrow field of this feature.

        >>> Feature("n", pa.int8(), nullable=False).arrow_field()
        pyarrow.Field<n: int8 not null>
        """
        return pa.field(self.name, self.dtype, nullable=self.nullable)


@dataclass(frozen=True)
class FeatureGroup:
    """A versioned table of features, keyed by entity keys and ordered by event time.

    Entity keys are non-null strings (ids, as in Kafka keys); the event time is a UTC
    microsecond timestamp. ``ttl`` is how long a value stays fresh for online serving
    (``None``: forever). ``table`` overrides the default table name ``{name}_v{version}``.

    >>> g = FeatureGroup("labels", 1, ("tx_id",), "event_time",
    ...                  (Feature("is_fraud", pa.int8(), nullable=False),), table="labels")
    >>> g.table_name, g.feature_names
    ('labels', ('is_fraud',))
    """

    name: str
    version: int
    entity_keys: tuple[str, ...]
    event_time: str
    features: tuple[Feature, ...]
    online: bool = False
    offline: bool = True
    ttl: timedelta | None = None
    tags: frozenset[str] = field(default_factory=frozenset)
    description: str = ""
    table: str | None = None

    def __post_init__(self) -> None:
        for attr in ("entity_keys", "features"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        object.__setattr__(self, "tags", frozenset(self.tags))
        _check_name("feature group", self.name)
        where = f"feature group {self.name!r}"
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise FeatureGroupError(f"{where}: version must be an int >= 1, got {self.version!r}")
        if not self.entity_keys:
            raise FeatureGroupError(f"{where}: needs at least one entity key")
        for key in self.entity_keys:
            _check_name("entity key", key)
        _check_name("event time", self.event_time)
        if self.ttl is not None and self.ttl <= timedelta(0):
            raise FeatureGroupError(f"{where}: ttl must be positive or None, got {self.ttl}")
        if self.table is not None:
            _check_name("table", self.table)
        names = [f.name for f in self.schema()]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise FeatureGroupError(f"{where}: column names used twice: {duplicates}")

    @property
    def table_name(self) -> str:
        """The table the group is stored in: ``table`` if given, else ``{name}_v{version}``."""
        return self.table or f"{self.name}_v{self.version}"

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the declared features, in declaration order."""
        return tuple(f.name for f in self.features)

    @property
    def secondary_keys(self) -> tuple[str, ...]:
        """Features tagged `KEY_TAG`: keys other groups can be joined on."""
        return tuple(f.name for f in self.features if KEY_TAG in f.tags)

    def columns(self) -> dict[str, Feature]:
        """Every column a reader sees (keys, event time, features) as a `Feature`, by name.

        >>> list(FeatureGroup("g", 1, ("k",), "t", (Feature("x", pa.int64()),)).columns())
        ['k', 't', 'x']
        """
        keys = [Feature(k, pa.string(), nullable=False, tags={KEY_TAG}) for k in self.entity_keys]
        time = Feature(self.event_time, EVENT_TIME_TYPE, nullable=False, tags={"event_time"})
        return {f.name: f for f in (*keys, time, *self.features)}

    def feature(self, name: str) -> Feature:
        """The declared feature called ``name``; `FeatureGroupError` naming the choices if none."""
        for feature in self.features:
            if feature.name == name:
                return feature
        raise FeatureGroupError(
            f"feature group {self.name!r} v{self.version} has no feature {name!r}; "
            f"it has {list(self.feature_names)}"
        )

    def schema(self) -> pa.Schema:
        """Arrow schema of the stored table.

        Order: entity keys, secondary keys, event time, other features, source columns.
        """
        keys = [pa.field(k, pa.string(), nullable=False) for k in self.entity_keys]
        secondary = [f.arrow_field() for f in self.features if KEY_TAG in f.tags]
        rest = [f.arrow_field() for f in self.features if KEY_TAG not in f.tags]
        time = pa.field(self.event_time, EVENT_TIME_TYPE, nullable=False)
        return pa.schema([*keys, *secondary, time, *rest, *SOURCE_FIELDS])


def _feature_changes(old: FeatureGroup, new: FeatureGroup) -> Iterable[str]:
    """Breaking differences between the features of two declarations of one group."""
    new_by_name = {f.name: f for f in new.features}
    old_names = set(old.feature_names)
    for before in old.features:
        after = new_by_name.get(before.name)
        if after is None:
            yield f"removed feature {before.name!r}"
            continue
        if after.dtype != before.dtype:
            yield f"feature {before.name!r} changed dtype {before.dtype} -> {after.dtype}"
        if before.nullable and not after.nullable:
            yield f"feature {before.name!r} changed nullable -> not null"
        if (KEY_TAG in before.tags) != (KEY_TAG in after.tags):
            yield f"feature {before.name!r} changed whether it is a secondary key"
    for after in new.features:
        if after.name not in old_names and not after.nullable:
            yield f"added non-nullable feature {after.name!r} (old rows have no value)"


def breaking_changes(old: FeatureGroup, new: FeatureGroup) -> list[str]:
    """Every change from ``old`` to ``new`` that existing rows or readers cannot absorb.

    >>> old = FeatureGroup("g", 1, ("k",), "t", (Feature("x", pa.int64()),))
    >>> new = FeatureGroup("g", 1, ("k",), "t", (Feature("x", pa.int32()),))
    >>> breaking_changes(old, new)
    ["feature 'x' changed dtype int64 -> int32"]
    """
    changes = list(_feature_changes(old, new))
    if old.entity_keys != new.entity_keys:
        changes.append(f"entity keys changed {old.entity_keys} -> {new.entity_keys}")
    if old.event_time != new.event_time:
        changes.append(f"event time changed {old.event_time!r} -> {new.event_time!r}")
    if old.table_name != new.table_name:
        changes.append(f"table changed {old.table_name!r} -> {new.table_name!r}")
    return changes


def check_evolution(old: FeatureGroup, new: FeatureGroup) -> None:
    """Refuse ``new`` if it keeps ``old``'s name and version but changes it incompatibly.

    Adding a nullable feature, changing descriptions, tags, ttl or online/offline is allowed;
    removing a feature, changing a dtype, key or event time, tightening nullable to not null
    or adding a non-nullable feature is not. A different version is always allowed.

    >>> old = FeatureGroup("g", 1, ("k",), "t", (Feature("x", pa.int64()),))
    >>> check_evolution(old, FeatureGroup("g", 1, ("k",), "t", ()))
    Traceback (most recent call last):
    ...
    fti.features.errors.SchemaEvolutionError: feature group 'g' v1 changed incompatibly: \
removed feature 'x'; bump the version (to v2) to make this change
    >>> check_evolution(old, FeatureGroup("g", 2, ("k",), "t", ()))
    """
    if old.name != new.name:
        raise SchemaEvolutionError(
            f"cannot compare feature groups of different names: {old.name!r} and {new.name!r}"
        )
    if old.version != new.version:
        return
    changes = breaking_changes(old, new)
    if changes:
        raise SchemaEvolutionError(
            f"feature group {old.name!r} v{old.version} changed incompatibly: "
            f"{'; '.join(changes)}; bump the version (to v{old.version + 1}) to make this change"
        )
