"""features/splits.py on a table of its own (an id, a time, a class): sizes, determinism, no
overlap, gaps, ranges, class balance, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from fti.errors import FtiError
from fti.features.dataset_records import Split
from fti.features.splits import (
    class_allocation,
    random_split,
    split_sizes,
    stratified_split,
    time_range_split,
    time_split,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FRACTIONS = (0.65, 0.15, 0.2)


def _table(n: int = 1000, seed: int = 0, positive_rate: float = 0.07) -> pa.Table:
    """n labelled rows, one a minute, shuffled, with a unique id per row."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    return pa.table({
        "id": [f"row-{i}" for i in order],
        "event_time": pa.array([T0 + timedelta(minutes=int(i)) for i in order],
                               pa.timestamp("us", tz="UTC")),
        "y": pa.array((rng.random(n) < positive_rate).astype(np.int8)),
    })


def _ids(split: Split) -> list[set[str]]:
    return [set(part["id"].to_pylist()) for part in split.parts().values()]


def _sizes(split: Split) -> list[int]:
    return [part.num_rows for part in split.parts().values()]


def _assert_partition(split: Split, table: pa.Table) -> None:
    train, validation, test = _ids(split)
    assert not (train & validation or train & test or validation & test)
    assert train | validation | test == set(table["id"].to_pylist())


@pytest.mark.parametrize("n", [3, 7, 10, 101, 1000])
def test_sizes_add_up_and_round_by_largest_remainder(n: int) -> None:
    fractions = (0.34, 0.33, 0.33)
    sizes = split_sizes(n, fractions)
    assert sum(sizes) == n
    assert all(abs(s - n * f) < 1 for s, f in zip(sizes, fractions, strict=True))


@pytest.mark.parametrize("split", [
    lambda t, seed: random_split(t, FRACTIONS, seed),
    lambda t, seed: stratified_split(t, FRACTIONS, seed, "y"),
])
def test_random_kinds_partition_deterministically(split) -> None:  # noqa: ANN001
    table = _table()
    first, again, other = split(table, 1), split(table, 1), split(table, 2)
    _assert_partition(first, table)
    assert _sizes(first) == [650, 150, 200]
    assert _ids(first) == _ids(again)
    assert _ids(first) != _ids(other)
    pairs = zip(first.parts().values(), again.parts().values(), strict=True)
    assert all(a.equals(b) for a, b in pairs)


def test_time_split_orders_by_time() -> None:
    table = _table()
    split = time_split(table, FRACTIONS)
    _assert_partition(split, table)
    assert _sizes(split) == [650, 150, 200]
    ends = [(pc.min(p["event_time"]).as_py(), pc.max(p["event_time"]).as_py())
            for p in split.parts().values()]
    assert ends[0][1] < ends[1][0] and ends[1][1] < ends[2][0]
    assert split.train["event_time"].to_pylist() == sorted(split.train["event_time"].to_pylist())


def test_time_split_gap_drops_rows_close_to_the_previous_split() -> None:
    table = _table()
    gap = timedelta(minutes=30)
    split = time_split(table, FRACTIONS, gap=gap)
    train_end = pc.max(split.train["event_time"]).as_py()
    validation_end = pc.max(split.validation["event_time"]).as_py()
    assert pc.min(split.validation["event_time"]).as_py() - train_end >= gap
    assert pc.min(split.test["event_time"]).as_py() - validation_end >= gap
    assert _sizes(split) == [650, 150 - 29, 200 - 29]  # +1..+29 min dropped, +30 min kept
    assert time_split(table, FRACTIONS, gap=timedelta(0)).test.equals(
        time_split(table, FRACTIONS).test)


def test_time_split_gap_too_large_is_refused() -> None:
    with pytest.raises(FtiError, match="validation split is empty .* gap of 5:00:00"):
        time_split(_table(), FRACTIONS, gap=timedelta(hours=5))
    with pytest.raises(FtiError, match=">= 0"):
        time_split(_table(), FRACTIONS, gap=timedelta(minutes=-1))


def test_time_range_split_keeps_rows_in_each_half_open_range() -> None:
    table = _table()
    at = lambda m: T0 + timedelta(minutes=m)  # noqa: E731
    split = time_range_split(table, (None, at(600)), (at(600), at(700)), (at(750), None))
    assert _sizes(split) == [600, 100, 250]
    assert pc.max(split.validation["event_time"]).as_py() == at(699)
    assert pc.min(split.test["event_time"]).as_py() == at(750)


@pytest.mark.parametrize("ranges, message", [
    (((None, 700), (600, 800), (800, None)), "train range .* overlaps the validation range"),
    (((None, 600), (600, 800), (100, 200)), "train range .* overlaps the test range"),
    (((None, 600), (700, 650), (800, None)), "validation range must start before it ends"),
    (((None, 600), (600, 800), (5000, None)), "test range .* holds no rows"),
])
def test_time_range_split_refuses_bad_ranges(ranges, message: str) -> None:  # noqa: ANN001
    at = lambda m: None if m is None else T0 + timedelta(minutes=m)  # noqa: E731
    with pytest.raises(FtiError, match=message):
        time_range_split(_table(), *[(at(a), at(b)) for a, b in ranges])


def test_time_range_split_needs_time_zones() -> None:
    with pytest.raises(FtiError, match="needs a time zone"):
        time_range_split(_table(), (None, datetime(2026, 1, 1)), (T0, None), (T0, None))


@pytest.mark.parametrize("seed", range(5))
def test_stratified_keeps_class_ratio_within_one_row(seed: int) -> None:
    table = _table(n=997, seed=seed, positive_rate=0.03 + 0.05 * seed)
    split = stratified_split(table, FRACTIONS, seed, "y")
    _assert_partition(split, table)
    positives, rows = pc.sum(table["y"]).as_py(), table.num_rows
    for part in split.parts().values():
        exact = positives * part.num_rows / rows
        assert abs(pc.sum(part["y"]).as_py() - exact) <= 1


def test_class_allocation_is_within_one_row_for_many_classes() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        counts = rng.integers(1, 40, rng.integers(1, 8))
        n = int(counts.sum())
        sizes = np.array(split_sizes(n, FRACTIONS)) if n >= 10 else np.array([n - 2, 1, 1])
        allocation = class_allocation(counts, sizes)
        assert (allocation.sum(axis=1) == counts).all() and (allocation.sum(axis=0) == sizes).all()
        assert (np.abs(allocation - np.outer(counts, sizes) / n) <= 1).all()


def test_stratified_needs_its_label_column() -> None:
    with pytest.raises(FtiError, match="no column 'label' to stratify on"):
        stratified_split(_table(), FRACTIONS, 1, label="label")


@pytest.mark.parametrize("fractions, message", [
    ((0.6, 0.2, 0.1), "must sum to 1"),
    ((0.8, 0.2), "three numbers"),
    ((1.0, 0.0, 0.0), "between 0 and 1"),
    ((0.9, 0.11, -0.01), "between 0 and 1"),
])
def test_bad_fractions_are_refused(fractions: tuple, message: str) -> None:
    for split in (lambda t: random_split(t, fractions, 1), lambda t: time_split(t, fractions),
                  lambda t: stratified_split(t, fractions, 1, "y")):
        with pytest.raises(FtiError, match=message):
            split(_table(20))


def test_a_split_that_would_be_empty_is_refused() -> None:
    with pytest.raises(FtiError, match="validation split would be empty: 5 rows x 0.1"):
        random_split(_table(5), (0.7, 0.1, 0.2), 1)
    with pytest.raises(FtiError, match="would be empty"):
        time_split(_table(0), FRACTIONS)


def test_time_splits_read_the_time_column_they_are_given() -> None:
    table = _table().rename_columns(["id", "label_at", "y"])
    with pytest.raises(FtiError, match="no column 'event_time' to split by time"):
        time_split(table, FRACTIONS)
    split = time_split(table, FRACTIONS, timedelta(minutes=5), time_column="label_at")
    assert _sizes(split) == [650, 150 - 4, 200 - 4]
    at = lambda m: T0 + timedelta(minutes=m)  # noqa: E731
    ranged = time_range_split(table, (None, at(10)), (at(10), at(20)), (at(20), None),
                              time_column="label_at")
    assert _sizes(ranged) == [10, 10, 980]


def test_rows_of_equal_time_keep_the_input_order() -> None:
    table = pa.table({"event_time": [3, 1, 1, 2, 1, 3], "id": list("abcdef")})
    split = time_split(table, (0.5, 1 / 6, 1 / 3))
    assert [p["id"].to_pylist() for p in split.parts().values()] == [
        ["b", "c", "e"], ["d"], ["a", "f"]]


def test_allow_empty_returns_a_split_that_would_be_empty() -> None:
    assert _sizes(time_split(_table(0), FRACTIONS, allow_empty=True)) == [0, 0, 0]
    assert _sizes(time_split(_table(3), FRACTIONS, allow_empty=True)) == [2, 0, 1]
    with pytest.raises(FtiError, match="validation split would be empty"):
        time_split(_table(3), FRACTIONS)
