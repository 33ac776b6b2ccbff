"""Feature rows recomputed from raw events by the documented definitions alone, for any
declared group: the yardstick the engine, the inference path and the flows are held to."""

from __future__ import annotations

import math
import statistics
from typing import Any

from fti.features.project.declare import FeatureGroup
from fti.features.project.decode import Event


def brute_force_rows(group: FeatureGroup, events: list[Event]) -> list[dict[str, Any] | str]:
    """Per event in arrival order: its feature row, or "late" / "transform:<name>"."""
    lateness = group.allowed_lateness.total_seconds()  # type: ignore[union-attr]
    out: list[dict[str, Any] | str] = []
    accepted: list[Event] = []
    for e in events:
        key = e.values[group.entity]
        mine = [p for p in accepted if p.values[group.entity] == key]
        if mine and e.time < max(p.time for p in mine) - lateness:
            out.append("late")
            continue
        row: dict[str, Any] = {group.entity: key}
        if group.stream.id is not None:
            row[group.stream.id] = e.values.get(group.stream.id)
        row["event_time"] = e.time
        for name in group.features:
            row[name] = e.values.get(name)
        failed = None
        for t in group.transformations:
            try:
                row[t.name] = t.function(dict(e.values))
            except Exception:  # noqa: BLE001 - the engine rejects the event
                failed = f"transform:{t.name}"
                break
        if failed:
            out.append(failed)
            continue
        earlier = [p for p in mine if p.time <= e.time]
        previous = None
        for p in earlier:  # latest by time; among equal times the later arrival
            if previous is None or p.time >= previous.time:
                previous = p
        for agg in group.aggregations:
            if agg.window is None:
                if agg.function == "time_since_previous":
                    row[agg.name] = None if previous is None else e.time - previous.time
                else:
                    row[agg.name] = None if previous is None else previous.values.get(agg.field)
                continue
            size = agg.window.total_seconds() / 60
            b = math.floor(e.time / size)
            inside = [p for p in mine if b - 60 < math.floor(p.time / size) <= b] + [e]
            if agg.function == "count":
                row[agg.name] = len(inside)
                continue
            values = [p.values.get(agg.field) for p in inside]
            values = [v for v in values if v is not None]
            if agg.function == "distinct_count":
                row[agg.name] = len({str(v) for v in values})
            elif not values:
                row[agg.name] = None
            else:
                row[agg.name] = {
                    "sum": math.fsum, "mean": statistics.fmean, "min": min, "max": max,
                    "std": statistics.pstdev,
                }[agg.function](values)
                row[agg.name] = float(row[agg.name])
        accepted.append(e)
        out.append(row)
    return out


def same_value(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-9 relative (sums are added in another order)."""
    if isinstance(a, float) or isinstance(b, float):
        return (a is None) == (b is None) and (
            a is None or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6))
    return a == b


def assert_rows_equal(got: dict[str, Any] | str, want: dict[str, Any] | str, what: str) -> None:
    """Fail naming the first feature that differs."""
    if isinstance(want, str) or isinstance(got, str):
        assert got == want, what
        return
    assert got.keys() == want.keys(), f"{what}: {sorted(got)} != {sorted(want)}"
    for name in want:
        assert same_value(got[name], want[name]), f"{what}: {name} {got[name]!r} != {want[name]!r}"
