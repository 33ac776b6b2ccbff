"""features/pit.py: both as-of join engines against a brute-force reference, and the benchmark.

`hypothesis` is not installed here, so the property test runs over many seeded random cases.
"""

from __future__ import annotations

import random
import sys
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from fti.errors import FtiError
from fti.features.pit import asof_join

TS = pa.timestamp("us", tz="UTC")
ENGINES = ("sort", "acero")


def brute_force(left: pa.Table, right: pa.Table, keys: list[str], on: str, limit: float) -> list:
    """Row number of each left row's match: same non-null keys, latest time <= it, last on ties."""
    right_rows = right.to_pylist()
    out = []
    for row in left.to_pylist():
        if row[on] is None or any(row[k] is None for k in keys):
            out.append(None)
            continue
        best = None
        for j, candidate in enumerate(right_rows):
            t = candidate[on]
            if t is None or any(candidate[k] != row[k] for k in keys):
                continue
            if t <= row[on] and row[on] - t <= limit:
                if best is None or t >= right_rows[best][on]:
                    best = j
        out.append(best)
    return out


def random_case(seed: int) -> tuple[pa.Table, pa.Table, list[str]]:
    """Few keys and times: ties on time, out-of-order and late rows, null keys, times, values."""
    rng = random.Random(seed)
    n_left, n_right = rng.randint(0, 40), rng.randint(0, 60)
    string_keys = rng.random() < 0.5

    def key(high: int) -> object:
        if rng.random() < 0.05:
            return None
        k = rng.randint(0, high)
        return f"card-{k}" if string_keys else k

    def time() -> int | None:
        return None if rng.random() < 0.05 else rng.randint(0, 25)

    keys = ["entity"] + (["channel"] if rng.random() < 0.3 else [])
    left = {"entity": [key(8) for _ in range(n_left)], "ts": [time() for _ in range(n_left)],
            "label_id": list(range(n_left))}
    right = {"entity": [key(5) for _ in range(n_right)], "ts": [time() for _ in range(n_right)],
             "value": [None if rng.random() < 0.2 else rng.random() for _ in range(n_right)],
             "note": [rng.choice(["a", "b", None]) for _ in range(n_right)]}
    if len(keys) == 2:
        left["channel"] = [rng.choice([0, 1, None]) for _ in range(n_left)]
        right["channel"] = [rng.choice([0, 1, None]) for _ in range(n_right)]
    key_type = pa.string() if string_keys else pa.int64()
    types = {"entity": key_type, "ts": pa.int64(), "channel": pa.int64(), "label_id": pa.int64(),
             "value": pa.float64(), "note": pa.string()}
    as_table = lambda d: pa.table({k: pa.array(v, types[k]) for k, v in d.items()})  # noqa: E731
    return as_table(left), as_table(right), keys


def expected_table(left: pa.Table, right: pa.Table, matches: list) -> pa.Table:
    out = left
    for name in ("value", "note"):
        out = out.append_column(name, right[name].take(pa.array(matches, pa.int64())))
    return out


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("seed", range(60))
def test_matches_brute_force(seed: int, engine: str) -> None:
    left, right, keys = random_case(seed)
    limit = random.Random(seed).choice([None, 0, 3])
    expected = brute_force(left, right, keys, "ts", float("inf") if limit is None else limit)
    out = asof_join(left, right, by=keys, on="ts", tolerance=limit, engine=engine)
    assert out.equals(expected_table(left, right, expected))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("seed", range(10))
def test_times_too_wide_to_pack(seed: int, engine: str) -> None:
    """Times spanning ~2**62 cannot share an int64 with the key code: the lexsort path."""
    left, right, keys = random_case(seed)
    left = left.set_column(1, "ts", pc.multiply(left["ts"], 2**57))
    right = right.set_column(1, "ts", pc.multiply(right["ts"], 2**57))
    expected = brute_force(left, right, keys, "ts", float("inf"))
    out = asof_join(left, right, by=keys, on="ts", engine=engine)
    assert out.equals(expected_table(left, right, expected))


@pytest.mark.parametrize("engine", ENGINES)
def test_timestamps_chunks_and_timedelta_tolerance(engine: str) -> None:
    left, right, keys = random_case(11)
    left = left.set_column(1, "ts", left["ts"].cast(TS))
    right = right.set_column(1, "ts", right["ts"].cast(TS))
    chunked = pa.Table.from_batches(right.to_batches(max_chunksize=7))
    expected = brute_force(left, right, keys, "ts", timedelta(microseconds=4))
    out = asof_join(left, chunked, keys, "ts", tolerance=timedelta(microseconds=4), engine=engine)
    assert out.equals(expected_table(left, right, expected))


@pytest.mark.parametrize("engine", ENGINES)
def test_entity_without_features_and_matched_time(engine: str) -> None:
    left = pa.table({"e": ["a", "zzz"], "t": pa.array([10, 10], TS)})
    right = pa.table({"e": ["a", "a"], "t": pa.array([10, 3], TS), "v": [1.0, None]})
    out = asof_join(left, right, "e", "t", matched_time="t_match", engine=engine)
    assert out["v"].to_pylist() == [1.0, None]
    assert out["t_match"].cast(pa.int64()).to_pylist() == [10, None]


def test_errors_name_the_problem() -> None:
    left = pa.table({"e": [1], "t": [1], "v": [0.0]})
    right = pa.table({"e": [1], "t": [1], "v": [2.0]})
    with pytest.raises(FtiError, match=r"\['v'\] are on both sides"):
        asof_join(left, right, "e", "t")
    with pytest.raises(FtiError, match="no column"):
        asof_join(left, right.drop_columns(["e"]), "e", "t")
    with pytest.raises(FtiError, match="tolerance must be >= 0"):
        asof_join(left.drop_columns(["v"]), right, "e", "t", tolerance=-1)
    with pytest.raises(FtiError, match="engine"):
        asof_join(left.drop_columns(["v"]), right, "e", "t", engine="spark")  # type: ignore[arg-type]
    with pytest.raises(FtiError, match="time column"):
        asof_join(left.drop_columns(["v"]).set_column(1, "t", pa.array([1.5])),
                  right.set_column(1, "t", pa.array([1.0])), "e", "t")


def test_quick_benchmark_runs_and_engines_agree() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import pit_join

    args = pit_join.parse_args(["--quick"])
    assert (args.labels, args.feature_rows) == (100_000, 500_000)
    result = pit_join.main(args.labels, args.feature_rows, repeat=1, acero=True)
    assert result["same_result_on_sample"] is True
    assert result["acero_same_result"] is True
    assert 0 < result["matched"] <= args.labels and result["ours_s"] > 0 and result["ratio"] > 0
