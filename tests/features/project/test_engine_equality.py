"""Equality, proven: for random event streams (out of order within the allowed lateness,
late events, duplicate keys, tied times, missing optional values), the engine's rows, the
inference path's rows (online state as JSON + the event) and a brute-force recomputation
from the raw events agree."""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fti.features import project as fp
from fti.features.project import FeatureGroup, Field, Stream
from fti.features.project.decode import Event, Rejection
from fti.features.project.engine import EntityState, GroupEngine

STREAM = Stream("s", topic="s", event_time="ts", id="eid", fields=[
    Field("eid", "string"), Field("k", "string"), Field("x", "float", required=False),
    Field("c", "string", required=False), Field("ts", "timestamp")])
WINDOWS = (("1m", 60.0), ("7m", 420.0))
GROUP = FeatureGroup(
    "g", entity="k", stream=STREAM, allowed_lateness="90s",
    aggregations=[agg for label, _ in WINDOWS for agg in (
        fp.count(window=label), fp.sum("x", window=label), fp.mean("x", window=label),
        fp.min("x", window=label), fp.max("x", window=label), fp.std("x", window=label),
        fp.distinct_count("c", window=label))]
    + [fp.last("x"), fp.last("c"), fp.time_since_previous()],
)
LATENESS = 90.0


def brute_force(events: list[Event]) -> list[dict[str, Any] | str]:
    """Each event's row from the raw events alone, by the documented definitions."""
    out: list[dict[str, Any] | str] = []
    accepted: list[tuple[int, Event]] = []  # (arrival, event), same entity checked below
    for i, e in enumerate(events):
        key = e.values["k"]
        mine = [(j, p) for j, p in accepted if p.values["k"] == key]
        if mine and e.time < max(p.time for _, p in mine) - LATENESS:
            out.append("late")
            continue
        row: dict[str, Any] = {"k": key, "eid": e.values["eid"], "event_time": e.time}
        earlier = [p for _, p in mine if p.time <= e.time]
        prev = earlier[-1] if earlier else None
        for p in earlier:  # latest by time; among equal times the later arrival
            if p.time >= prev.time:
                prev = p
        row["x_last"] = None if prev is None else prev.values["x"]
        row["c_last"] = None if prev is None else prev.values["c"]
        row["secs_since_previous"] = None if prev is None else e.time - prev.time
        for label, seconds in WINDOWS:
            size = seconds / 60
            b = math.floor(e.time / size)
            inside = [p for _, p in mine if b - 60 < math.floor(p.time / size) <= b] + [e]
            xs = [p.values["x"] for p in inside if p.values["x"] is not None]
            row[f"count_{label}"] = len(inside)
            row[f"x_sum_{label}"] = math.fsum(xs) if xs else None
            row[f"x_mean_{label}"] = statistics.fmean(xs) if xs else None
            row[f"x_min_{label}"] = min(xs) if xs else None
            row[f"x_max_{label}"] = max(xs) if xs else None
            row[f"x_std_{label}"] = statistics.pstdev(xs) if xs else None
            row[f"c_distinct_{label}"] = len({p.values["c"] for p in inside
                                               if p.values["c"] is not None})
        accepted.append((i, e))
        out.append(row)
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
    return a == b


def _assert_rows_equal(got: dict[str, Any] | str, want: dict[str, Any] | str, what: str) -> None:
    if isinstance(want, str) or isinstance(got, str):
        assert got == want, what
        return
    assert got.keys() == want.keys(), what
    for name in want:
        assert _same(got[name], want[name]), f"{what}: {name} {got[name]!r} != {want[name]!r}"


@st.composite
def streams(draw: st.DrawFn) -> list[Event]:
    n = draw(st.integers(1, 60))
    events = []
    clock = 1_767_225_600.0
    for i in range(n):
        clock += draw(st.sampled_from([0.0, 0.0, 0.5, 3.0, 20.0, 61.0, 400.0]))
        jitter = draw(st.sampled_from([0.0, 0.0, -10.0, -45.0, -89.0, -95.0, -300.0]))
        t = clock + jitter
        x = draw(st.one_of(st.none(), st.floats(-1e4, 1e4, allow_nan=False),
                           st.integers(-5, 5).map(float)))
        c = draw(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d"])))
        k = draw(st.sampled_from(["k1", "k2", "k3"]))
        events.append(Event({"eid": f"e{i}", "k": k, "x": x, "c": c, "ts": t}, t))
    return events


@settings(max_examples=300, deadline=None)
@given(streams())
def test_engine_inference_path_and_brute_force_agree(events: list[Event]) -> None:
    engine = GroupEngine(GROUP)
    states: dict[str, EntityState] = {}
    online: dict[str, str] = {}  # what the online store holds: the state as JSON text
    want = brute_force(events)
    for i, event in enumerate(events):
        key = engine.entity_of(event)
        assert key is not None
        stored = online.get(key)
        served = engine.preview(
            None if stored is None else EntityState.from_json(json.loads(stored)), event)
        state, row = engine.apply(states.get(key), event)
        states[key] = state
        online[key] = json.dumps(state.to_json())
        got = row.rule if isinstance(row, Rejection) else row
        inferred = served.rule if isinstance(served, Rejection) else served
        _assert_rows_equal(got, want[i], f"engine, event {i}")
        _assert_rows_equal(inferred, want[i], f"inference path, event {i}")


def test_state_stays_bounded_however_many_events() -> None:
    engine = GroupEngine(GROUP)
    state = None
    for i in range(20_000):  # two events a second for almost three hours
        t = 1_767_225_600.0 + i * 0.5
        state, _ = engine.apply(state, Event({"eid": str(i), "k": "a", "x": float(i % 7),
                                              "c": str(i % 50), "ts": t}, t))
    assert state is not None
    for (_, seconds), buckets in zip(WINDOWS, state.buckets, strict=True):
        # 60 buckets per window, plus those the allowed lateness can still reach
        assert len(buckets) <= 60 + math.ceil(LATENESS / (seconds / 60)) + 1
    assert len(state.recent) <= LATENESS * 2 + 2  # events within the lateness, plus one
