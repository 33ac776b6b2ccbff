"""The online store's contract: the latest feature row per entity, judged by TTL on read.

`OnlineStore` is the contract every backend implements (`fti.connectors.online.sqlite`, the
embedded default, and `fti.connectors.online.redis`, the production backend). Upserts are
event-time aware: an older event never overwrites a newer value (an equal one does), so
replays and out-of-order events leave the store as if events had arrived in order. A store
built with `ttl_s` judges values on read: older than `ttl_s` by event time, a value is
"expired" to `lookup` and absent from `get_many`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Literal, Protocol, runtime_checkable

import orjson

from fti.errors import FtiError


class OnlineStoreError(FtiError):
    """The online store's backend is unreachable or refused an operation."""


class OnlineRow:
    """An entity's latest features, the event (id) they are as of, and its window state.

    Immutable, built as `OnlineRow(entity, event_time, event_id, features, window)`. Rows read
    from a store decode `features` and `window` from JSON on first access only, so a batched
    read costs little more than the backend's own (`from_json`).

    >>> row = OnlineRow.from_json("c1", 5.0, "t5", '{"amount": 2.0}', '[[5.0, 2.0, "DE", "t5"]]')
    >>> row == OnlineRow("c1", 5.0, "t5", {"amount": 2.0}, [[5.0, 2.0, "DE", "t5"]])
    True
    >>> row.window[0][2]
    'DE'
    """

    # Read-only properties over slots: immutable, yet filled at plain-attribute speed.
    __slots__ = ("_entity", "_event_time", "_event_id", "_features", "_window", "_raw_f", "_raw_w")
    entity = property(attrgetter("_entity"), doc="The entity (its key).")
    event_time = property(attrgetter("_event_time"), doc="Event time, epoch seconds.")
    event_id = property(attrgetter("_event_id"), doc="Id of the event the features are as of.")

    def __init__(self, entity: str, event_time: float, event_id: str, features: dict[str, float],
                 window: list[list[Any]]) -> None:
        self._entity, self._event_time, self._event_id = entity, event_time, event_id
        self._features, self._window = features, window

    @classmethod
    def from_json(
        cls, entity: str, event_time: float, event_id: str, features: str | bytes,
        window: str | bytes,
    ) -> OnlineRow:
        """A row whose features and window are JSON texts, decoded when first read."""
        row = cls.__new__(cls)
        row._entity, row._event_time, row._event_id = entity, event_time, event_id
        row._features = row._window = None
        row._raw_f, row._raw_w = features, window
        return row

    @property
    def features(self) -> dict[str, float]:
        """Feature name → value, as of `event_id`."""
        if self._features is None:
            self._features = json.loads(self._raw_f)
        return self._features

    @property
    def window(self) -> list[list[Any]]:
        """The entity's window state as plain lists (the engine's own layout), oldest first."""
        if self._window is None:
            self._window = json.loads(self._raw_w)
        return self._window

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OnlineRow):
            return NotImplemented
        return self._astuple() == other._astuple()

    __hash__ = None  # type: ignore[assignment]  # mutable dict/list fields, as a dataclass

    def __reduce__(self) -> tuple[type[OnlineRow], tuple[Any, ...]]:
        return OnlineRow, self._astuple()  # pickle and copy rebuild through __init__

    def __repr__(self) -> str:
        entity, event_time, event_id, features, window = self._astuple()
        return (f"OnlineRow(entity={entity!r}, event_time={event_time!r}, event_id={event_id!r},"
                f" features={features!r}, window={window!r})")

    def _astuple(self) -> tuple[str, float, str, dict[str, float], list[list[Any]]]:
        return self._entity, self._event_time, self._event_id, self.features, self.window


def json_text(value: Any) -> str:
    """`value` as JSON text, as stores write features and state (orjson: ~3x `json.dumps`).

    >>> json_text({"a": [1.5, None], 2: "x"})
    '{"a":[1.5,null],"2":"x"}'
    """
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


@dataclass(frozen=True)
class Lookup:
    """One entity's answer from `OnlineStore.lookup`: its status, row and age (event time).

    >>> Lookup("missing", None, None).status
    'missing'
    """

    status: Literal["ok", "missing", "expired"]
    row: OnlineRow | None
    age_s: float | None


@runtime_checkable
class OnlineStore(Protocol):
    """The contract of an online store backend (SQLite, Redis); `tests/` checks every one."""

    def upsert(self, rows: Iterable[OnlineRow]) -> None:
        """Write rows atomically; per entity the newest event time wins, ties overwrite."""

    def get_many(self, entities: list[str]) -> dict[str, OnlineRow]:
        """Batched read of fresh rows; missing and expired entities are absent."""

    def lookup(self, entities: list[str], now: float | None = None) -> dict[str, Lookup]:
        """Batched read with a status per entity: "ok", "missing" or "expired" (at `now`)."""

    def count(self) -> int:
        """Number of entities holding a value (expired ones included until reclaimed)."""

    def newest_event_time(self) -> float | None:
        """Event time of the freshest value, epoch seconds; None when empty."""

    def close(self) -> None:
        """Release connections (SQLite: the calling thread's)."""


def judge(
    rows: dict[str, OnlineRow], entities: list[str], ttl_s: float | None, now: float | None
) -> dict[str, Lookup]:
    """A `Lookup` per requested entity from the rows found, judging expiry by event time.

    >>> judge({"a": OnlineRow("a", 10.0, "t", {}, [])}, ["a", "b"], 5.0, 20.0)["a"].status
    'expired'
    """
    now = time.time() if now is None else now
    out: dict[str, Lookup] = {}
    for entity in entities:
        row = rows.get(entity)
        if row is None:
            out[entity] = Lookup("missing", None, None)
        else:
            age = now - row.event_time
            out[entity] = Lookup("expired" if ttl_s is not None and age > ttl_s else "ok", row, age)
    return out


def fresh_only(rows: dict[str, OnlineRow], ttl_s: float | None) -> dict[str, OnlineRow]:
    """`rows` without those older than `ttl_s` by event time (all of them when no TTL)."""
    if ttl_s is None:
        return rows
    oldest = time.time() - ttl_s
    return {entity: row for entity, row in rows.items() if row.event_time >= oldest}


def freshness_seconds(store: OnlineStore, now: float | None = None) -> float | None:
    """Seconds from the newest value's event time to `now`; None when the store is empty."""
    newest = store.newest_event_time()
    if newest is None:
        return None
    return (time.time() if now is None else now) - newest
