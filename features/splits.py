"""Train / validation / test splits of a training table: random, by time, by time range, stratified.

Every function returns a ``Split`` (features/training_data.py) and is deterministic for a given
table and seed. Fractions are ``(train, validation, test)``, each > 0, summing to 1; split sizes
are rounded by largest remainder so they add up to the number of rows, and a split that would be
empty is an error rather than a silent degenerate dataset. Random and stratified splits keep the
input's row order within each part; time splits return rows in label-time order.

>>> import pyarrow as pa
>>> t = pa.table({"label_time": list(range(10)), "is_fraud": [0, 1] * 5})
>>> s = random_split(t, (0.6, 0.2, 0.2), seed=1)
>>> [p.num_rows for p in s.parts().values()]
[6, 2, 2]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fti.features.errors import SplitError
from fti.features.training_data import Split, sort_by_label_time

Fractions = tuple[float, float, float]
TimeRange = tuple[datetime | None, datetime | None]
SPLIT_NAMES: tuple[str, str, str] = ("train", "validation", "test")
TIME_COLUMN = "label_time"


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


def split_sizes(rows: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Rows per split: ``rows * fraction`` rounded by largest remainder (ties to the earlier).

    >>> split_sizes(10, (0.65, 0.15, 0.2))
    (7, 1, 2)
    """
    values = check_fractions(fractions)
    exact = [rows * f for f in values]
    sizes = [math.floor(x) for x in exact]
    by_remainder = sorted(range(3), key=lambda i: (-(exact[i] - sizes[i]), i))
    for i in by_remainder[: rows - sum(sizes)]:
        sizes[i] += 1
    for name, size, fraction in zip(SPLIT_NAMES, sizes, values, strict=True):
        if size == 0:
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


def time_split(table: pa.Table, fractions: Sequence[float], gap: timedelta | None = None) -> Split:
    """Oldest rows train, then validation, newest test; ``gap`` keeps splits apart in time.

    With a gap, validation rows whose label_time is less than ``gap`` after the last training
    row, and test rows less than ``gap`` after the last validation row, are dropped: no
    evaluation row is closer than ``gap`` to the rows before it.

    >>> from datetime import UTC, datetime, timedelta
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> t = pa.table({"label_time": [t0 + timedelta(minutes=m) for m in range(10)]})
    >>> [p.num_rows for p in time_split(t, (0.6, 0.2, 0.2), timedelta(minutes=2)).parts().values()]
    [6, 1, 1]
    """
    gap = gap or timedelta(0)
    if gap < timedelta(0):
        raise SplitError(f"the gap between splits must be >= 0, got {gap}")
    ordered = sort_by_label_time(table)
    n_train, n_validation, _ = split_sizes(ordered.num_rows, fractions)
    train = ordered.slice(0, n_train)
    validation = _after(ordered.slice(n_train, n_validation), train, gap, "validation")
    test = _after(ordered.slice(n_train + n_validation), validation, gap, "test")
    return Split(train=train, validation=validation, test=test)


def _after(part: pa.Table, before: pa.Table, gap: timedelta, name: str) -> pa.Table:
    """``part`` (sorted) without its rows closer than ``gap`` to the end of ``before``."""
    if not gap:
        return part
    if not pa.types.is_timestamp(part.schema.field(TIME_COLUMN).type):
        raise SplitError(f"a gap needs {TIME_COLUMN} to be a timestamp, got "
                         f"{part.schema.field(TIME_COLUMN).type}")
    end = pc.max(before[TIME_COLUMN]).as_py()
    too_close = pc.less(part[TIME_COLUMN], pa.scalar(end + gap, part[TIME_COLUMN].type))
    kept = part.slice(int(pc.sum(too_close).as_py() or 0))
    if kept.num_rows == 0:
        raise SplitError(f"the {name} split is empty once rows within the gap of {gap} after "
                         f"{end.isoformat()} are dropped; use a smaller gap or larger fractions")
    return kept


def time_range_split(
    table: pa.Table, train: TimeRange, validation: TimeRange, test: TimeRange
) -> Split:
    """Rows whose label_time is in ``[start, end)`` of each range (None: open); others dropped.

    Ranges must not overlap and need time zones.

    >>> from datetime import UTC, datetime
    >>> day = lambda d: datetime(2026, 1, d, tzinfo=UTC)
    >>> t = pa.table({"label_time": [day(d) for d in range(1, 11)]})
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
    ordered = sort_by_label_time(table)
    times = ordered[TIME_COLUMN]
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
                             f"(label times span {span})")
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
    table: pa.Table, fractions: Sequence[float], seed: int, label: str = "is_fraud"
) -> Split:
    """A random split that keeps each class's share of every split within one row of exact.

    For class c and split s, the split gets ``rows_c * rows_s / rows`` of that class rounded
    down or up (nulls in ``label`` are a class of their own).

    >>> t = pa.table({"is_fraud": [1] * 10 + [0] * 90})
    >>> s = stratified_split(t, (0.7, 0.15, 0.15), seed=3)
    >>> [(p.num_rows, pc.sum(p["is_fraud"]).as_py()) for p in s.parts().values()]
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
