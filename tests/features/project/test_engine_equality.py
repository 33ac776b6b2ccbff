"""Equality, proven: for random event streams (out of order within the allowed lateness,
late events, duplicate keys, tied times, missing optional values), the engine's rows, the
inference path's rows (online state as JSON + the event, read before or after the engine
stored the event) and a brute-force recomputation from the raw events agree; the engine's
and the inference path's exactly."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from fti.features.project import FeatureGroup, Field, Stream, agg
from fti.features.project.decode import Event, Rejection
from fti.features.project.engine import EntityState, GroupEngine
from tests.features.project.brute_force import assert_rows_equal, brute_force_rows

STREAM = Stream("s", topic="s", event_time="ts", id="eid", fields=[
    Field("eid", "string"), Field("k", "string"), Field("x", "float", required=False),
    Field("c", "string", required=False), Field("ts", "timestamp")])
WINDOWS = (("1m", 60.0), ("7m", 420.0))
GROUP = FeatureGroup(
    "g", entity="k", stream=STREAM, allowed_lateness="90s",
    aggregations=[a for label, _ in WINDOWS for a in (
        agg.count(window=label), agg.sum("x", window=label), agg.mean("x", window=label),
        agg.min("x", window=label), agg.max("x", window=label), agg.std("x", window=label),
        agg.distinct_count("c", window=label))]
    + [agg.last("x"), agg.last("c"), agg.time_since_previous()],
)
LATENESS = 90.0


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
    want = brute_force_rows(GROUP, events)
    for i, event in enumerate(events):
        key = engine.entity_of(event)
        assert key is not None
        stored = online.get(key)
        # Inference before the engine stored the event ...
        _, served = engine.serve(
            None if stored is None else EntityState.from_json(json.loads(stored)), event)
        state, row = engine.apply(states.get(key), event)
        states[key] = state
        online[key] = json.dumps(state.to_json())
        # ... and after: the state holds the event, which must not count twice.
        _, held = engine.serve(EntityState.from_json(json.loads(online[key])), event)
        got = row.rule if isinstance(row, Rejection) else row
        assert_rows_equal(got, want[i], f"engine, event {i}")
        if isinstance(want[i], str):  # late: still scored, from the state, never stored
            assert isinstance(served, dict) and isinstance(held, dict), f"late event {i}"
            continue
        assert_rows_equal(served, want[i], f"inference before the engine, event {i}")
        assert_rows_equal(held, want[i], f"inference after the engine, event {i}")
        # The engine's running window state and inference's rebuild from the buckets fold
        # the same buckets the same way: equal to the last bit.
        assert served == row and held == row, f"engine vs inference, event {i}"


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
