"""The streaming aggregations, as one namespace so they never shadow Python's builtins:

>>> from fti.features.project import agg
>>> [a.name for a in (agg.count(window="15m"), agg.sum("amount", window="1h"),
...                   agg.max("amount", window="1d"), agg.time_since_previous())]
['count_15m', 'amount_sum_1h', 'amount_max_1d', 'secs_since_previous']
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import pyarrow as pa

from fti.features.errors import DefinitionError
from fti.features.project.fields import (
    ARROW_TYPES,
    Duration,
    Stream,
    check_name,
    duration_label,
    parse_duration,
)

AggFunction = Literal["count", "sum", "mean", "min", "max", "std", "last", "distinct_count",
                      "time_since_previous"]
NEEDS_NUMBER = frozenset({"sum", "mean", "min", "max", "std"})
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
    check_name(f"feature of {where}", name)
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
