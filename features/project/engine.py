"""The feature engine's logic for one group: incremental window state per entity, and the
features of each event from it. Pure Python, no I/O: `fti.flows.materialize` drives it over
Kafka, `fti backfill` over files, and inference calls `GroupEngine.preview` on the state it
reads from the online store, so the three compute features with the same code.

**Windows are exact to 1/60 of their length.** A window of length `w` keeps per-bucket
partial aggregates (count, sum, mean and M2 for std, min, max, distinct values) over buckets
of event time `w/60` long: the window of an event covers the 60 buckets up to and including
the event's own bucket, and every event of the entity that arrived before it (or is it) and
falls in them. State per entity is at most 60 buckets per window length plus the events
within the allowed lateness, whatever the event rate.

At inference (`serve`), the state read from the online store may already hold the event and
later ones: the window still ends at the event's own bucket, an event the state holds (by its
id, among the entity's newest `MAX_SEEN` within the lateness) is not counted twice, and a
late event is scored rather than rejected.

`last(f)` and `time_since_previous()` look at the entity's latest *earlier* event by event
time (arrived before this one, time at or before its time); null for the first. An event
older than the entity's newest accepted event time minus the group's allowed lateness is
rejected with rule `late`.

>>> from fti.features.project import Field, Stream, FeatureGroup, agg
>>> from fti.features.project.decode import Event
>>> s = Stream("p", topic="p", event_time="ts", fields=[Field("m"), Field("x", "float"),
...            Field("ts", "timestamp")])
>>> g = GroupEngine(FeatureGroup("g", entity="m", stream=s,
...                 aggregations=[agg.count(window="1m"), agg.sum("x", window="1m")]))
>>> state, row = g.apply(None, Event({"m": "a", "x": 2.0, "ts": 0.0}, 0.0))
>>> state, row = g.apply(state, Event({"m": "a", "x": 3.0, "ts": 30.0}, 30.0))
>>> row["count_1m"], row["x_sum_1m"]
(2, 5.0)
>>> g.apply(state, Event({"m": "a", "x": 1.0, "ts": 70.0}, 70.0))[1]["count_1m"]
2
"""

from __future__ import annotations

import bisect
import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fti.features.project.agg import Aggregation
from fti.features.project.declare import FeatureGroup
from fti.features.project.decode import Event, Rejection
from fti.features.project.tables import group_schema

BUCKETS_PER_WINDOW = 60
#: Ids of the newest events an entity's state keeps (within the allowed lateness), so
#: inference does not count an event twice; older ones are counted again at inference.
MAX_SEEN = 1024
# A numeric partial: [n, sum, mean, m2, min, max].
_N, _SUM, _MEAN, _M2, _MIN, _MAX = range(6)


@dataclass
class EntityState:
    """One entity's state in one group; plain data, so it snapshots and goes online as JSON.

    `buckets[w][b]` is `[events, {field: numeric partial}, {field: {value: n}}]` for window
    plan `w` and bucket index `b`; `recent` holds `[time, seq, {field: value}]` sorted by
    (time, seq) for `last` and `time_since_previous`.
    """

    max_time: float | None = None
    seq: int = 0
    buckets: list[dict[int, list[Any]]] = field(default_factory=list)
    recent: list[list[Any]] = field(default_factory=list)
    #: `[time, event id, seq]` of the events within the allowed lateness of the newest, when
    #: the stream declares an id: inference knows an event the state already holds.
    seen: list[list[Any]] = field(default_factory=list)
    #: Per window plan: the closed part of the window (`_Closed`), kept up to date as events
    #: move forward. Derived data: never serialized, rebuilt on demand to the same values.
    closed: list[Any] = field(default_factory=list, compare=False, repr=False)
    #: Per window plan: the bucket up to which old buckets were dropped (derived, like
    #: `closed`): no accepted event can add one at or below it again.
    expired: list[int] = field(default_factory=list, compare=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        """Snapshots leave out the derived `closed` part (rebuilt to the same values)."""
        return {**self.__dict__, "closed": [], "expired": []}

    def to_json(self) -> list[list[Any]]:
        """The state as JSON-able rows (bucket keys as text)."""
        return [[self.max_time, self.seq],
                [{str(b): v for b, v in plan.items()} for plan in self.buckets],
                self.recent, self.seen]

    @classmethod
    def from_json(cls, rows: list[Any]) -> EntityState:
        """The inverse of `to_json` (a state written before `seen` existed has none)."""
        (max_time, seq), buckets, recent = rows[:3]
        seen = [list(r) for r in rows[3]] if len(rows) > 3 else []
        return cls(max_time, seq, [{int(b): v for b, v in plan.items()} for plan in buckets],
                   [list(r) for r in recent], seen)

    def holds(self, time: float, event_id: Any) -> int | None:
        """The seq at which the event `event_id` of `time` was added, if this state holds it."""
        i = bisect.bisect_left(self.seen, time, key=lambda r: r[0])
        while i < len(self.seen) and self.seen[i][0] == time:
            if self.seen[i][1] == event_id:
                return int(self.seen[i][2])
            i += 1
        return None

    def closed_slot(self, plan: int) -> Any:
        """The cached closed part of window plan `plan` (None when there is none)."""
        if len(self.closed) <= plan:
            self.closed.extend([None] * (plan + 1 - len(self.closed)))
        return self.closed[plan]


@dataclass(frozen=True)
class _WindowPlan:
    seconds: float
    bucket_s: float
    numeric: tuple[str, ...]
    distinct: tuple[str, ...]
    aggregations: tuple[Aggregation, ...]
    #: `(function, field, feature name)` of each aggregation.
    outputs: tuple[tuple[str, str, str], ...] = ()


def bucket_of(time: float, bucket_s: float) -> int:
    """The bucket index of an event time (epoch seconds) for buckets `bucket_s` long."""
    return math.floor(time / bucket_s)


class GroupEngine:
    """Computes one group's feature rows, event by event, from per-entity state."""

    def __init__(self, group: FeatureGroup, max_recent: int = 100_000) -> None:
        self.group = group
        self.schema = group_schema(group)
        lateness = group.allowed_lateness
        assert isinstance(lateness, timedelta)
        self.lateness_s = lateness.total_seconds()
        self.max_recent = max_recent
        by_window: dict[float, list[Aggregation]] = {}
        for agg in group.aggregations:
            if agg.window is not None:
                by_window.setdefault(agg.window.total_seconds(), []).append(agg)
        self.plans = [
            _WindowPlan(
                seconds, seconds / BUCKETS_PER_WINDOW,
                tuple(sorted({a.field for a in aggs if a.field and a.function
                              in ("sum", "mean", "min", "max", "std")})),
                tuple(sorted({a.field for a in aggs if a.function == "distinct_count"
                              and a.field})),
                tuple(aggs),
                tuple((a.function, a.field or "", a.name) for a in aggs),
            )
            for seconds, aggs in sorted(by_window.items())
        ]
        self.last_fields = tuple(sorted({a.field for a in group.aggregations
                                         if a.function == "last" and a.field}))
        self.needs_recent = any(a.function in ("last", "time_since_previous")
                                for a in group.aggregations)
        self.point = [a for a in group.aggregations if a.window is None]
        self.id_field = group.stream.id

    def entity_of(self, event: Event) -> str | None:
        """The entity key of an event as text (None when the event has none)."""
        value = event.values.get(self.group.entity)
        return None if value is None else str(value)

    def apply(self, state: EntityState | None, event: Event, late_ok: bool = False
              ) -> tuple[EntityState, dict[str, Any] | Rejection]:
        """Add `event` to its entity's state; return the state and the event's feature row
        (entity, event id, `event_time` in epoch seconds, features) or a `Rejection`
        (`late_ok`: compute the row of a late event too, as inference does)."""
        if state is None:
            state = EntityState(buckets=[{} for _ in self.plans])
        t = event.time
        if (not late_ok and state.max_time is not None
                and t < state.max_time - self.lateness_s):
            return state, Rejection(
                "late", f"event time {t:.3f} is more than {self.lateness_s:g} s before the "
                f"newest event time {state.max_time:.3f} of {self.group.entity} "
                f"{self.entity_of(event)} in group {self.group.name}")
        row = self._row_start(event)
        for t_ in self.group.transformations:
            try:
                row[t_.name] = t_.function(dict(event.values))
            except Exception as ex:  # a user's function must not stop the engine
                return state, Rejection(f"transform:{t_.name}",
                                        f"{t_.name} raised {type(ex).__name__}: {ex}")
        if self.needs_recent:
            self._point_features(state, event, row)
        for w, plan in enumerate(self.plans):
            bucket = bucket_of(t, plan.bucket_s)
            buckets = state.buckets[w]
            closed = state.closed_slot(w)
            if closed is None or bucket < closed.hi or not closed.advance(buckets, bucket):
                if closed is None or closed.hi != bucket:
                    # First use, an out-of-order event, or a jump of two blocks and more.
                    closed = _Closed.build(buckets, bucket)
                    state.closed[w] = closed
            _add(buckets, bucket, plan, event.values)
            _window_features(buckets[bucket], closed, plan, row)
        if self.id_field is not None:
            bisect.insort_right(state.seen, [t, event.values.get(self.id_field), state.seq],
                                key=lambda r: r[0])
        state.seq += 1
        state.max_time = t if state.max_time is None else max(state.max_time, t)
        self._expire(state)
        return state, row

    def preview(self, state: EntityState | None, event: Event) -> dict[str, Any] | Rejection:
        """The row `apply` would give, leaving `state` untouched."""
        return self.apply(copy.deepcopy(state), event)[1]

    def serve(self, state: EntityState | None, event: Event
              ) -> tuple[EntityState, dict[str, Any] | Rejection]:
        """Inference's path: the event's row from the entity's state as the online store
        holds it, which may already hold the event (the feature engine got there first) and
        events after it. An event the state holds is not added again: its row is read from
        the buckets up to its own and from the events that arrived before it; one it does
        not hold is added (to this copy) as `apply` would, and a late one is scored without
        being added, as the engine rejects it. Either way the
        window is the 60 buckets up to the event's own, so events after it count only when
        they fall in its own bucket (exact to 1/60 of the window, as documented).
        `state` is changed in place: pass a copy you may change."""
        event_id = event.values.get(self.id_field) if self.id_field is not None else None
        seq = None if state is None or event_id is None else state.holds(event.time, event_id)
        if state is None or seq is None:
            if state is not None and state.max_time is not None and (
                    event.time < state.max_time - self.lateness_s):
                # Late: scored, but kept out of the state, as the engine keeps it out.
                return state, self.apply(copy.deepcopy(state), event, late_ok=True)[1]
            return self.apply(state, event)
        row = self._row_start(event)
        for t_ in self.group.transformations:
            try:
                row[t_.name] = t_.function(dict(event.values))
            except Exception as ex:  # a user's function must not stop serving
                return state, Rejection(f"transform:{t_.name}",
                                        f"{t_.name} raised {type(ex).__name__}: {ex}")
        if self.needs_recent:
            before = [r for r in state.recent if r[1] < seq and r[0] <= event.time]
            self._point_features(EntityState(recent=before), event, row)
        for w, plan in enumerate(self.plans):
            bucket = bucket_of(event.time, plan.bucket_s)
            current = state.buckets[w].get(bucket) or [0, {}, {}]
            _window_features(current, _Closed.build(state.buckets[w], bucket), plan, row)
        return state, row

    def _row_start(self, event: Event) -> dict[str, Any]:
        values = event.values
        row: dict[str, Any] = {self.group.entity: values[self.group.entity]}
        if self.id_field is not None:
            row[self.id_field] = values.get(self.id_field)
        row["event_time"] = event.time
        for name in self.group.features:
            row[name] = values.get(name)
        return row

    def _point_features(self, state: EntityState, event: Event, row: dict[str, Any]) -> None:
        recent, t = state.recent, event.time
        i = bisect.bisect_right(recent, t, key=lambda r: r[0]) - 1
        previous = recent[i] if i >= 0 else None
        for agg in self.point:
            if agg.function == "time_since_previous":
                row[agg.name] = None if previous is None else t - previous[0]
            else:
                row[agg.name] = None if previous is None else previous[2].get(agg.field)
        entry = [t, state.seq, {f: event.values.get(f) for f in self.last_fields}]
        bisect.insort_right(recent, entry, key=lambda r: (r[0], r[1]))

    def _expire(self, state: EntityState) -> None:
        assert state.max_time is not None
        oldest = state.max_time - self.lateness_s
        expired = state.expired
        if not expired:
            expired.extend([None] * len(self.plans))
        for w, plan in enumerate(self.plans):
            first = bucket_of(oldest, plan.bucket_s) - BUCKETS_PER_WINDOW
            done = expired[w]
            if done is not None and first <= done:
                continue  # every accepted event falls in a later bucket than `done`
            expired[w] = first
            buckets = state.buckets[w]
            for b in [b for b in buckets if b <= first]:
                del buckets[b]
        seen = state.seen
        if seen and seen[0][0] < oldest:
            del seen[:bisect.bisect_left(seen, oldest, key=lambda r: r[0])]
        if len(seen) > MAX_SEEN:
            del seen[:len(seen) - MAX_SEEN]
        recent = state.recent
        if recent:
            keep = bisect.bisect_left(recent, oldest, key=lambda r: r[0])
            keep = max(keep - 1, 0, len(recent) - self.max_recent)
            if keep:
                del recent[:keep]


def _add(buckets: dict[int, list[Any]], bucket: int, plan: _WindowPlan,
         values: Mapping[str, Any]) -> None:
    data = buckets.get(bucket)
    if data is None:
        data = buckets[bucket] = [0, {}, {}]
    data[0] += 1
    for name in plan.numeric:
        x = values.get(name)
        if x is None:
            continue
        p = data[1].get(name)
        if p is None:
            data[1][name] = [1, x, float(x), 0.0, x, x]
            continue
        p[_N] += 1
        p[_SUM] += x
        d = x - p[_MEAN]
        p[_MEAN] += d / p[_N]
        p[_M2] += d * (x - p[_MEAN])
        if x < p[_MIN]:
            p[_MIN] = x
        if x > p[_MAX]:
            p[_MAX] = x
    for name in plan.distinct:
        x = values.get(name)
        if x is not None:
            seen = data[2].setdefault(name, {})
            key = str(x)
            seen[key] = seen.get(key, 0) + 1


class _Closed:
    """The closed part of an entity's window for the events of bucket `hi`: the buckets
    `hi - 59 … hi - 1`, kept up to date as `hi` moves forward instead of merged anew.

    Counts and distinct values are running totals (added as a bucket closes, taken off as it
    leaves the window). The numeric partials are folds over blocks of 60 aligned buckets
    (block `P = hi // 60`): a left fold of block `P`'s closed buckets (`prefix`, one merge
    per closing bucket) and a right fold of block `P - 1` (`suffix`, worked out once when
    `hi` enters block `P`), so the window is `suffix[first bucket >= hi - 59] ⊕ prefix`.
    Each value is therefore the same folds of the same buckets however it was reached
    (incrementally, or `build` from the buckets alone, as inference does): equal to the last
    bit, whatever the history, batch boundaries or restarts.
    """

    __slots__ = ("hi", "top", "events", "distinct", "window", "start", "suffix_ids", "suffix",
                 "prefix", "_stats")

    def __init__(self, hi: int) -> None:
        self.hi = hi
        #: The newest bucket that may exist: while it is `hi`, only bucket `hi` can close
        #: when `hi` moves on (events of later buckets move `hi` before they are added).
        self.top = hi
        self.events = 0
        #: field -> {value: closed buckets holding it}
        self.distinct: dict[str, dict[str, int]] = {}
        #: `(bucket, data)` of the closed buckets in the window, oldest first, from `start`.
        self.window: list[tuple[int, list[Any]]] = []
        self.start = 0
        self.suffix_ids: list[int] = []
        self.suffix: list[dict[str, list[Any]]] = []
        self.prefix: dict[str, list[Any]] = {}
        self._stats: dict[str, list[Any]] | None = None

    @classmethod
    def build(cls, buckets: dict[int, list[Any]], hi: int) -> _Closed:
        """The closed part of bucket `hi`'s window, from the buckets alone."""
        c = cls(hi)
        first = hi - BUCKETS_PER_WINDOW + 1
        block = (hi // BUCKETS_PER_WINDOW) * BUCKETS_PER_WINDOW
        inside = sorted(b for b in buckets if first <= b < hi)
        c.top = max(hi, max(buckets, default=hi))
        for b in inside:
            c._count_in(b, buckets[b])
        c._fold_suffix([(b, buckets[b]) for b in inside if b < block])
        for b in inside:
            if b >= block:
                _fold_into(c.prefix, buckets[b][1])
        return c

    def advance(self, buckets: dict[int, list[Any]], hi: int) -> bool:
        """Move to bucket `hi` (>= the current one); False when a rebuild is cheaper."""
        old = self.hi
        if hi == old:
            return True
        block, old_block = hi // BUCKETS_PER_WINDOW, old // BUCKETS_PER_WINDOW
        if block > old_block + 1:
            return False
        first = hi - BUCKETS_PER_WINDOW + 1
        crossing = block != old_block
        if crossing:
            self.prefix = {}
        block_start = block * BUCKETS_PER_WINDOW
        closing = range(max(old, first), hi) if self.top > old else (old,) if old >= first else ()
        for b in closing:
            data = buckets.get(b)
            if data is not None:
                self._count_in(b, data)
                if b >= block_start:
                    _fold_into(self.prefix, data[1])
        window, start = self.window, self.start
        while start < len(window) and window[start][0] < first:
            self._count_out(window[start][1])
            start += 1
        if start > 64:
            del window[:start]
            start = 0
        if crossing:
            # Block `old_block` becomes the suffix: its buckets still in the window.
            self._fold_suffix([entry for entry in window[start:] if entry[0] < block_start])
        self.start, self.hi, self._stats = start, hi, None
        self.top = max(self.top, hi)
        return True

    def stats(self) -> dict[str, list[Any]]:
        """Field -> merged numeric partial of the closed buckets (absent: no value)."""
        if self._stats is None:
            i = bisect.bisect_left(self.suffix_ids, self.hi - BUCKETS_PER_WINDOW + 1)
            before = self.suffix[i] if i < len(self.suffix) else {}
            if not before:
                self._stats = self.prefix
            elif not self.prefix:
                self._stats = before
            else:
                out = dict(before)
                for name, p in self.prefix.items():
                    q = out.get(name)
                    out[name] = p if q is None else _merge(q, p)
                self._stats = out
        return self._stats

    def _count_in(self, b: int, data: list[Any]) -> None:
        self.window.append((b, data))
        self.events += data[0]
        for name, seen in data[2].items():
            counts = self.distinct.get(name)
            if counts is None:
                counts = self.distinct[name] = {}
            for value in seen:
                counts[value] = counts.get(value, 0) + 1

    def _count_out(self, data: list[Any]) -> None:
        self.events -= data[0]
        for name, seen in data[2].items():
            counts = self.distinct[name]
            for value in seen:
                left = counts[value] - 1
                if left:
                    counts[value] = left
                else:
                    del counts[value]

    def _fold_suffix(self, ordered: list[tuple[int, list[Any]]]) -> None:
        """Right folds of one block's buckets (`ordered` oldest first)."""
        ids: list[int] = []
        folds: list[dict[str, list[Any]]] = []
        acc: dict[str, list[Any]] = {}
        for b, data in reversed(ordered):
            if data[1]:
                acc = dict(acc)
                for name, p in data[1].items():
                    q = acc.get(name)
                    acc[name] = list(p) if q is None else _merge(p, q)
            ids.append(b)
            folds.append(acc)
        ids.reverse()
        folds.reverse()
        self.suffix_ids, self.suffix = ids, folds


def _fold_into(acc: dict[str, list[Any]], parts: dict[str, list[Any]]) -> None:
    """Left-fold a bucket's numeric partials into `acc` (new lists: `acc`'s are shared)."""
    for name, p in parts.items():
        q = acc.get(name)
        acc[name] = list(p) if q is None else _merge(q, p)


def _window_features(current: list[Any], closed: _Closed, plan: _WindowPlan,
                     row: dict[str, Any]) -> None:
    """Features of the window: the closed part merged with the event's own bucket."""
    events = closed.events + current[0]
    merged: dict[str, list[Any] | None] = {}
    if plan.numeric:
        stats, mine_all = closed.stats(), current[1]
        for name in plan.numeric:
            mine, others = mine_all.get(name), stats.get(name)
            merged[name] = (others if mine is None else mine if others is None
                            else _merge(others, mine))
    for fn, name, out in plan.outputs:
        if fn == "count":
            row[out] = events
        elif fn == "distinct_count":
            before = closed.distinct.get(name)
            values = current[2].get(name)
            if not before:
                row[out] = len(values) if values else 0
            elif not values:
                row[out] = len(before)
            else:
                row[out] = len(before) + sum(1 for value in values if value not in before)
        else:
            s = merged.get(name)
            row[out] = None if s is None else _stat(fn, s)


def _merge(a: list[Any], b: list[Any]) -> list[Any]:
    n = a[_N] + b[_N]
    d = b[_MEAN] - a[_MEAN]
    return [n, a[_SUM] + b[_SUM], a[_MEAN] + d * b[_N] / n,
            a[_M2] + b[_M2] + d * d * a[_N] * b[_N] / n,
            min(a[_MIN], b[_MIN]), max(a[_MAX], b[_MAX])]


def _stat(function: str, s: list[Any]) -> float:
    if function == "sum":
        return float(s[_SUM])
    if function == "mean":
        return float(s[_MEAN])
    if function == "min":
        return float(s[_MIN])
    if function == "max":
        return float(s[_MAX])
    return math.sqrt(max(s[_M2], 0.0) / s[_N])
