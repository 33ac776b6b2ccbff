"""Train / validation / test splits of a table: random, by time, by time range, stratified.

Every function returns a ``Split`` (features/dataset_records.py) and is deterministic for a given
table and seed. Fractions are ``(train, validation, test)``, each > 0, summing to 1; split sizes
are rounded by largest remainder so they add up to the number of rows, and a split that would be
empty is an error rather than a silent degenerate dataset. Random and stratified splits keep the
input's row order within each part; time splits return rows in time order (rows of equal time in
the input's order). Time splits read the column ``time_column`` (default ``event_time``);
stratified splits the class column ``label``, which the caller names.

>>> import pyarrow as pa
>>> t = pa.table({"event_time": list(range(10)), "y": [0, 1] * 5})
>>> s = random_split(t, (0.6, 0.2, 0.2), seed=1)
>>> [p.num_rows for p in s.parts().values()]
[6, 2, 2]
>>> [p["event_time"].to_pylist() for p in time_split(t, (0.6, 0.2, 0.2)).parts().values()]
[[0, 1, 2, 3, 4, 5], [6, 7], [8, 9]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fti.features.dataset_records import Split
from fti.features.errors import SplitError

Fractions = tuple[float, float, float]
TimeRange = tuple[datetime | None, datetime | None]
SPLIT_NAMES: tuple[str, str, str] = ("train", "validation", "test")
#: The column time splits order by, unless told otherwise.
TIME_COLUMN = "event_time"


def check_fractions(fractions: Sequence[float]) -> Fractions:
    """Return ``fractions`` as a (train, validation, test) tuple, or raise SplitError saying why.

    >>> check_fractions([0.7, 0.1, 0.2])
    (0.7, 0.1, 0.2)
    >>> check_fractions([0.7, 0.1, 0.1])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    fti.features.errors.SplitError: split fractions ... must sum to 1, got ... = 0.9
    """
    values = tuple(float(f) for f in fractions)
    if len(values) != 3:
        raise SplitError(f"split fractions must be three numbers (train, validation, test), "
                         f"got {len(values)}: {values}")
    if not all(0 < f < 1 for f in values):
        raise SplitError(f"every split fraction must be between 0 and 1 (exclusive), got {values}")
    if not math.isclose(sum(values), 1.0, abs_tol=1e-9):
        raise SplitError(f"split fractions (train, validation, test) must sum to 1, got {values} = "
                         f"{sum(values):.6g}")
    return values  # type: ignore[return-value]


def split_sizes(rows: int, fractions: Sequence[float], *,
                allow_empty: bool = False) -> tuple[int, int, int]:
    """Rows per split: ``rows * fraction`` rounded by largest remainder (ties to the earlier).

    A split that would be empty is refused, unless ``allow_empty`` (the caller checks).

    >>> split_sizes(10, (0.65, 0.15, 0.2))
    (7, 1, 2)
    >>> split_sizes(3, (0.65, 0.15, 0.2), allow_empty=True)
    (2, 0, 1)
    """
    values = check_fractions(fractions)
    exact = [rows * f for f in values]
    sizes = [math.floor(x) for x in exact]
    by_remainder = sorted(range(3), key=lambda i: (-(exact[i] - sizes[i]), i))
    for i in by_remainder[: rows - sum(sizes)]:
        sizes[i] += 1
    for name, size, fraction in zip(SPLIT_NAMES, sizes, values, strict=True):
        if size == 0 and not allow_empty:
            raise SplitError(f"the {name} split would be empty: {rows} rows x {fraction} rounds to "
                             f"0; use more rows or a larger {name} fraction")
    return sizes[0], sizes[1], sizes[2]


def random_split(table: pa.Table, fractions: Sequence[float], seed: int) -> Split:
    """Shuffle rows with ``seed`` and cut them by ``fractions``.

    >>> t = pa.table({"x": list(range(20))})
    >>> random_split(t, (0.5, 0.25, 0.25), 7).test["x"].to_pylist()
    [2, 9, 11, 17, 19]
    """
    sizes = split_sizes(table.num_rows, fractions)
    order = np.random.default_rng(seed).permutation(table.num_rows)
    cuts = np.cumsum(sizes)[:2]
    return _take_parts(table, np.split(order, cuts))


def time_split(table: pa.Table, fractions: Sequence[float], gap: timedelta | None = None, *,
               time_column: str = TIME_COLUMN, allow_empty: bool = False) -> Split:
    """Oldest rows train, then validation, newest test; ``gap`` keeps splits apart in time.

    Rows are ordered by ``time_column`` (rows of equal time keep the input's order). With a
    gap, validation rows whose time is less than ``gap`` after the last training row, and test
    rows less than ``gap`` after the last validation row, are dropped: no evaluation row is
    closer than ``gap`` to the rows before it. ``allow_empty`` returns a split that would be
    empty instead of refusing it (for a caller that checks the split itself).

    >>> from datetime import UTC, datetime, timedelta
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> t = pa.table({"event_time": [t0 + timedelta(minutes=m) for m in range(10)]})
    >>> [p.num_rows for p in time_split(t, (0.6, 0.2, 0.2), timedelta(minutes=2)).parts().values()]
    [6, 1, 1]
    """
    gap = gap or timedelta(0)
    if gap < timedelta(0):
        raise SplitError(f"the gap between splits must be >= 0, got {gap}")
    ordered = sort_by_time(table, time_column)
    n_train, n_validation, _ = split_sizes(ordered.num_rows, fractions, allow_empty=allow_empty)
    train = ordered.slice(0, n_train)
    validation = _after(ordered.slice(n_train, n_validation), train, gap, "validation",
                        time_column)
    test = _after(ordered.slice(n_train + n_validation), validation, gap, "test", time_column)
    return Split(train=train, validation=validation, test=test)


def sort_by_time(table: pa.Table, time_column: str = TIME_COLUMN) -> pa.Table:
    """``table`` ordered by ``time_column``, rows of equal time in their input order.

    >>> sort_by_time(pa.table({"event_time": [2, 1, 2], "k": ["b", "a", "c"]}))["k"].to_pylist()
    ['a', 'b', 'c']
    """
    if time_column not in table.column_names:
        raise SplitError(f"no column {time_column!r} to split by time; columns are "
                         f"{table.column_names}")
    return table.sort_by([(time_column, "ascending")])  # a stable sort


def _after(part: pa.Table, before: pa.Table, gap: timedelta, name: str,
           time_column: str) -> pa.Table:
    """``part`` (sorted) without its rows closer than ``gap`` to the end of ``before``."""
    if not gap or part.num_rows == 0 or before.num_rows == 0:
        return part
    kind = part.schema.field(time_column).type
    if not pa.types.is_timestamp(kind):
        raise SplitError(f"a gap needs {time_column} to be a timestamp, got {kind}")
    end = pc.max(before[time_column]).as_py()
    too_close = pc.less(part[time_column], pa.scalar(end + gap, kind))
    kept = part.slice(int(pc.sum(too_close).as_py() or 0))
    if kept.num_rows == 0:
        raise SplitError(f"the {name} split is empty once rows within the gap of {gap} after "
                         f"{end.isoformat()} are dropped; use a smaller gap or larger fractions")
    return kept


def time_range_split(
    table: pa.Table, train: TimeRange, validation: TimeRange, test: TimeRange, *,
    time_column: str = TIME_COLUMN,
) -> Split:
    """Rows whose ``time_column`` is in ``[start, end)`` of each range (None: open); others
    dropped. Ranges must not overlap and need time zones.

    >>> from datetime import UTC, datetime
    >>> day = lambda d: datetime(2026, 1, d, tzinfo=UTC)
    >>> t = pa.table({"event_time": [day(d) for d in range(1, 11)]})
    >>> s = time_range_split(t, (None, day(6)), (day(6), day(8)), (day(9), None))
    >>> [p.num_rows for p in s.parts().values()]
    [5, 2, 2]
    """
    ranges = dict(zip(SPLIT_NAMES, (train, validation, test), strict=True))
    for name, (start, end) in ranges.items():
        for point in (start, end):
            if point is not None and point.utcoffset() is None:
                raise SplitError(f"the {name} range needs a time zone, got {point.isoformat()} "
                                 f"(write e.g. 2026-01-01T00:00:00Z)")
        if start is not None and end is not None and start >= end:
            raise SplitError(f"the {name} range must start before it ends, got {_show(start, end)}")
    _refuse_overlaps(ranges)
    ordered = sort_by_time(table, time_column)
    times = ordered[time_column]
    parts = []
    for name, (start, end) in ranges.items():
        keep = pa.array(np.ones(ordered.num_rows, dtype=bool))
        if start is not None:
            keep = pc.and_(keep, pc.greater_equal(times, pa.scalar(start, times.type)))
        if end is not None:
            keep = pc.and_(keep, pc.less(times, pa.scalar(end, times.type)))
        part = ordered.filter(keep)
        if part.num_rows == 0:
            span = _show(pc.min(times).as_py(), pc.max(times).as_py())
            raise SplitError(f"the {name} range {_show(start, end)} holds no rows "
                             f"({time_column} spans {span})")
        parts.append(part)
    return Split(train=parts[0], validation=parts[1], test=parts[2])


def _refuse_overlaps(ranges: dict[str, TimeRange]) -> None:
    names = list(ranges)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            (a_start, a_end), (b_start, b_end) = ranges[a], ranges[b]
            if _before(a_start, b_end) and _before(b_start, a_end):
                raise SplitError(f"the {a} range {_show(a_start, a_end)} overlaps the {b} range "
                                 f"{_show(b_start, b_end)}; ranges are [start, end) and must not "
                                 f"overlap")


def _before(start: datetime | None, end: datetime | None) -> bool:
    return start is None or end is None or start < end


def _show(start: datetime | None, end: datetime | None) -> str:
    return f"{start.isoformat() if start else ''}..{end.isoformat() if end else ''}"


def stratified_split(
    table: pa.Table, fractions: Sequence[float], seed: int, label: str
) -> Split:
    """A random split that keeps each class's share of every split within one row of exact.

    ``label`` is the class column. For class c and split s, the split gets
    ``rows_c * rows_s / rows`` of that class rounded down or up (nulls in ``label`` are a
    class of their own).

    >>> t = pa.table({"y": [1] * 10 + [0] * 90})
    >>> s = stratified_split(t, (0.7, 0.15, 0.15), seed=3, label="y")
    >>> [(p.num_rows, pc.sum(p["y"]).as_py()) for p in s.parts().values()]
    [(70, 7), (15, 2), (15, 1)]
    """
    if label not in table.column_names:
        raise SplitError(f"no column {label!r} to stratify on; columns are {table.column_names}")
    sizes = np.array(split_sizes(table.num_rows, fractions))
    codes = pc.dictionary_encode(table[label].combine_chunks(), null_encoding="encode").indices
    codes = codes.to_numpy()
    counts = np.bincount(codes)
    per_class = class_allocation(counts, sizes)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for c, allocation in enumerate(per_class):
        rows = rng.permutation(np.flatnonzero(codes == c))
        for s, chunk in enumerate(np.split(rows, np.cumsum(allocation)[:2])):
            parts[s].append(chunk)
    return _take_parts(table, [np.concatenate(p) for p in parts])


def class_allocation(counts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Rows of each class per split: ``counts[c] * sizes[s] / sum`` rounded down or up, with
    row sums ``counts`` and column sums ``sizes`` (a 0/1 rounding matrix always exists; filling
    each class's round-ups into the splits that still need the most rows finds one).

    >>> class_allocation(np.array([10, 90]), np.array([70, 15, 15])).tolist()
    [[7, 2, 1], [63, 13, 14]]
    """
    exact = np.outer(counts, sizes) / counts.sum()
    floor = np.floor(exact).astype(np.int64)
    class_need = counts - floor.sum(axis=1)
    split_need = sizes - floor.sum(axis=0)
    for c in np.argsort(-class_need, kind="stable"):
        remainder = exact[c] - floor[c]
        ranked = sorted(range(len(sizes)), key=lambda s: (-split_need[s], -remainder[s], s))
        for s in ranked[: class_need[c]]:
            floor[c, s] += 1
            split_need[s] -= 1
    assert (split_need == 0).all(), "rounding left splits short; this is a bug"
    return floor


def _take_parts(table: pa.Table, parts: Sequence[np.ndarray]) -> Split:
    train, validation, test = (table.take(np.sort(rows)) for rows in parts)
    return Split(train=train, validation=validation, test=test)
