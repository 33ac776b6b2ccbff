"""Point-in-time join: `fti.features.pit.asof_join` (sort engine) against DuckDB's ASOF JOIN.

Both engines join the same in-memory Arrow tables: labels (entity, ts, label) to the latest
feature row of the same entity at or before the label time (a left join, so labels of entities
without features are kept with nulls). Feature rows arrive out of order, ~50 per entity, with 1 %
null values. `ratio` = duckdb_s / ours_s (above 1: ours is faster); seconds are the median of
--repeat runs. Memory is the peak resident set size above the RSS before each run, sampled from
/proc/self/statm every 2 ms (Arrow, numpy and DuckDB allocate outside Python's tracked heap, so
tracemalloc would miss most of it). Prints one JSON line.

Usage: python bench/pit_join.py [--labels 1000000] [--feature-rows 5000000] [--quick]
       [--repeat 3] [--acero]   (--acero also times pyarrow's Table.join_asof, once)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import duckdb
import numpy as np
import pyarrow as pa

from fti.features import pit
from fti.features.pit import asof_join

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")
VALUES = ("f0", "f1", "f2", "f3")
DUCKDB_SQL = (
    "SELECT l.*, f.* EXCLUDE (entity, ts) FROM labels l "
    "ASOF LEFT JOIN features f ON l.entity = f.entity AND l.ts >= f.ts"
)
_PAGE = os.sysconf("SC_PAGE_SIZE")


def synthetic(labels: int, feature_rows: int, seed: int = 7) -> tuple[pa.Table, pa.Table]:
    """Labels and out-of-order feature rows; feature times are unique, so matches are unique."""
    rng = np.random.default_rng(seed)
    entities = max(1, feature_rows // 50)
    start = int(T0.timestamp() * 1_000_000)
    span = feature_rows * 1000
    feature_ts = start + rng.permutation(feature_rows) * 1000 + rng.integers(0, 1000, feature_rows)
    features = {
        "entity": rng.integers(0, entities, feature_rows),
        "ts": pa.array(feature_ts, TS),
        "f_ts": pa.array(feature_ts, TS),  # the matched feature time, to check both engines
    }
    for name in VALUES:
        nulls = rng.random(feature_rows) < 0.01
        features[name] = pa.array(rng.normal(size=feature_rows), mask=nulls)
    label_table = pa.table(
        {
            "label_id": np.arange(labels),
            "entity": rng.integers(0, entities + entities // 50 + 1, labels),  # some lack features
            "ts": pa.array(start + rng.integers(0, span, labels), TS),
            "label": rng.integers(0, 2, labels).astype(np.int8),
        }
    )
    return label_table, pa.table(features)


class PeakRss:
    """Peak resident set size (bytes) above the RSS at entry, sampled on a thread."""

    def __init__(self, every_s: float = 0.002) -> None:
        self.every_s, self.peak, self._stop = every_s, 0, threading.Event()

    @staticmethod
    def rss() -> int:
        """Current resident set size in bytes."""
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE

    def _sample(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> PeakRss:
        self.base = self.peak = self.rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def above_base_mb(self) -> float:
        """Peak minus the RSS at entry, in MiB."""
        return (self.peak - self.base) / 2**20


def timed(run: Callable[[], pa.Table], repeat: int) -> tuple[pa.Table, float, float]:
    """The result, median wall seconds and largest peak RSS above the start (MiB) of runs."""
    seconds, peaks, result = [], [], None
    for _ in range(repeat):
        result = None  # let the previous result go before measuring the next run
        with PeakRss() as memory:
            start = time.perf_counter()
            result = run()
            seconds.append(time.perf_counter() - start)
        peaks.append(memory.above_base_mb)
    assert result is not None
    return result, float(np.median(seconds)), max(peaks)


def ours(labels: pa.Table, features: pa.Table, engine: pit.Engine = "sort") -> pa.Table:
    """fti.features.pit.asof_join; the default engine sorts both sides' packed keys once."""
    return asof_join(labels, features, by="entity", on="ts", engine=engine)


def with_duckdb(labels: pa.Table, features: pa.Table) -> pa.Table:
    """DuckDB ASOF LEFT JOIN over the same Arrow tables (scanned in place, not copied in)."""
    con = duckdb.connect()
    con.register("labels", labels)
    con.register("features", features)
    try:
        return con.sql(DUCKDB_SQL).to_arrow_table()
    finally:
        con.close()


def duckdb_threads() -> int:
    """Threads a fresh DuckDB connection uses (all cores by default)."""
    with duckdb.connect() as con:
        return int(con.execute("SELECT current_setting('threads')").fetchall()[0][0])


def phases(labels: pa.Table, features: pa.Table, repeat: int) -> dict[str, float]:
    """Where our time goes, step by step as in fti.features.pit.match_sorted; median of runs."""
    runs = [_phase_marks(labels, features) for _ in range(repeat)]
    return {name: round(float(np.median([run[name] for run in runs])), 3) for name in runs[0]}


def _phase_marks(labels: pa.Table, features: pa.Table) -> dict[str, float]:
    marks = [time.perf_counter()]
    left_rows = pit._valid_rows(labels, ["entity"], "ts")
    right_rows = pit._valid_rows(features, ["entity"], "ts")
    right_code, left_code = pit._key_codes(labels, features, ["entity"], left_rows, right_rows)
    left_rows, left_code = left_rows[left_code >= 0], left_code[left_code >= 0]
    marks.append(time.perf_counter())
    right_time = pit._times(features["ts"], right_rows)
    left_time = pit._times(labels["ts"], left_rows)
    right_packed, left_packed, _ = pit._packed(right_code, right_time, left_code, left_time)
    marks.append(time.perf_counter())
    order = np.argsort(right_packed)
    packed = right_packed[order]
    marks.append(time.perf_counter())
    left_packed = left_packed[np.argsort(left_packed)]
    at = np.maximum(np.searchsorted(packed, left_packed, side="right") - 1, 0)
    pit._last_of_equal_runs(packed, order, at)
    marks.append(time.perf_counter())
    matched = pit.match_sorted(labels, features, ["entity"], "ts")
    marks.append(time.perf_counter())
    features.select(list(VALUES)).take(pa.array(matched, mask=matched < 0))
    marks.append(time.perf_counter())
    names = ("key_codes_s", "times_and_packing_s", "argsort_right_s", "sort_and_search_left_s")
    steps = {name: marks[i + 1] - marks[i] for i, name in enumerate(names)}
    return steps | {"take_payload_s": marks[6] - marks[5]}


def same_result(a: pa.Table, b: pa.Table, sample: int, seed: int = 0) -> bool:
    """Both results hold the same rows for a random sample of label ids (order-free)."""
    a = a.sort_by("label_id")
    b = b.select(a.column_names).cast(a.schema).sort_by("label_id")
    if a.num_rows != b.num_rows:
        return False
    picks = np.random.default_rng(seed).choice(a.num_rows, min(sample, a.num_rows), replace=False)
    return a.take(picks).equals(b.take(picks))


def main(
    labels: int, feature_rows: int, repeat: int = 3, acero: bool = False, sample: int = 100_000
) -> dict[str, object]:
    """Run both engines (and pyarrow's Acero join_asof if asked) on one data set."""
    left, right = synthetic(labels, feature_rows)
    ours_table, ours_s, ours_mb = timed(lambda: ours(left, right), repeat)
    duck_table, duck_s, duck_mb = timed(lambda: with_duckdb(left, right), repeat)
    figures = {
        "labels": labels,
        "feature_rows": feature_rows,
        "entities": max(1, feature_rows // 50),
        "matched": ours_table.num_rows - ours_table["f_ts"].null_count,
        "ours_s": round(ours_s, 3),
        "duckdb_s": round(duck_s, 3),
        "ratio": round(duck_s / ours_s, 3),
        "ours_peak_rss_mb": round(ours_mb, 1),
        "duckdb_peak_rss_mb": round(duck_mb, 1),
        "process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "repeat": repeat,
        "rss_method": "peak /proc/self/statm above the RSS before each run, sampled every 2 ms",
        "ours_phases": phases(left, right, repeat),
        "same_result_on_sample": same_result(ours_table, duck_table, sample),
        "sample": min(sample, labels),
        "threads": {"duckdb": duckdb_threads(), "arrow_cpu": pa.cpu_count()},
    }
    if acero:
        acero_table, acero_s, acero_mb = timed(lambda: ours(left, right, engine="acero"), 1)
        figures |= {
            "acero_s": round(acero_s, 3),
            "acero_peak_rss_mb": round(acero_mb, 1),
            "acero_same_result": acero_table.equals(ours_table),
        }
    return figures


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Sizes from the command line; --quick is 100k labels / 500k feature rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=1_000_000)
    parser.add_argument("--feature-rows", type=int, default=5_000_000)
    parser.add_argument("--quick", action="store_true", help="100k labels, 500k feature rows")
    parser.add_argument("--repeat", type=int, default=3, help="runs per engine; median seconds")
    parser.add_argument("--acero", action="store_true", help="also time pyarrow's join_asof once")
    args = parser.parse_args(argv)
    if args.quick:
        args.labels, args.feature_rows = 100_000, 500_000
    return args


if __name__ == "__main__":
    options = parse_args()
    print(json.dumps(main(options.labels, options.feature_rows, options.repeat, options.acero)))
