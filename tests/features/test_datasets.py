"""features/datasets.py and fti/dataset_cli.py on a real temporary LanceDB offline store."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fti.cli.dataset import add_dataset_parser, run_dataset_command
from fti.errors import FtiError
from fti.features.datasets import (
    create_dataset,
    dataset_files,
    dataset_hash,
    list_datasets,
    read_dataset,
)
from fti.features.definitions import (
    FEATURE_COLUMNS,
    FEATURES_SCHEMA,
    FEATURES_TABLE,
    LABELS_SCHEMA,
    LABELS_TABLE,
)
from fti.features.training_data import load_dataset_record, rows_sha256, save_dataset_version
from fti.settings import Settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ROWS = 400


def _batch(first: int, n: int, seed: int) -> tuple[pa.Table, pa.Table]:
    """n transactions one minute apart and their labels 1-30 minutes later, ~10 % fraud."""
    rng = np.random.default_rng(seed)
    index = np.arange(first, first + n)
    times = [T0 + timedelta(minutes=int(i)) for i in index]
    source = {"source_partition": np.zeros(n, dtype=np.int32), "source_offset": index,
              "source_topic_id": [None] * n}
    features = pa.Table.from_pydict(
        {"tx_id": [f"tx-{i}" for i in index], "card_id": [f"card-{i % 13}" for i in index],
         "event_time": times, **{name: rng.normal(size=n) for name in FEATURE_COLUMNS},
         "source_topic": ["transactions"] * n, **source},
        schema=FEATURES_SCHEMA,
    )
    labels = pa.Table.from_pydict(
        {"tx_id": [f"tx-{i}" for i in index],
         "is_fraud": (rng.random(n) < 0.1).astype(np.int8),
         "event_time": [t + timedelta(minutes=int(d)) for t, d in
                        zip(times, rng.integers(1, 30, n), strict=True)],
         "source_topic": ["labels"] * n, **source},
        schema=LABELS_SCHEMA,
    )
    return features, labels


def _append(offline: Path, features: pa.Table, labels: pa.Table) -> None:
    db = lancedb.connect(str(offline))
    for name, rows, schema in ((FEATURES_TABLE, features, FEATURES_SCHEMA),
                               (LABELS_TABLE, labels, LABELS_SCHEMA)):
        if name in db.list_tables().tables:
            db.open_table(name).add(rows)
        else:
            db.create_table(name, data=rows, schema=schema)


@pytest.fixture
def store(tmp_path: Path) -> Settings:
    """Settings whose offline store holds ROWS labelled transactions and a partial replay."""
    settings = Settings(data_dir=tmp_path)
    features, labels = _batch(0, ROWS, seed=1)
    _append(settings.offline_dir, features, labels)
    _append(settings.offline_dir, features.slice(0, 40), labels.slice(0, 10))  # a replay
    return settings


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fti")
    add_dataset_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(list(argv))


@pytest.mark.parametrize("split", ["time", "random", "stratified"])
def test_create_writes_parquet_and_records_the_version(store: Settings, split: str) -> None:
    n = create_dataset(store, split=split, fractions=(0.65, 0.15, 0.2), seed=3)
    record = load_dataset_record(store.data_dir / "datasets", n)
    assert n == 1 and record.view == "fraud_v1" and record.split == split
    assert record.table_versions == {FEATURES_TABLE: 2, LABELS_TABLE: 2}
    assert record.fractions == (0.65, 0.15, 0.2) and record.seed == 3
    assert [record.splits[k].rows for k in ("train", "validation", "test")] == [260, 60, 80]
    for name, path in dataset_files(store, n).items():
        written = pq.read_table(path)
        assert written.num_rows == record.splits[name].rows
        assert rows_sha256(written) == record.splits[name].rows_sha256


def test_hash_is_stable_after_the_offline_store_grows(store: Settings) -> None:
    steps: list[str] = []
    n = create_dataset(store, split="time", gap=timedelta(minutes=10), on_step=steps.append)
    before = read_dataset(store, n)
    _append(store.offline_dir, *_batch(ROWS, 300, seed=2))  # newer data, new Lance versions
    record = load_dataset_record(store.data_dir / "datasets", n)
    assert dataset_hash(store, n) == record.rows_sha256
    again = read_dataset(store, n)
    for name, part in again.parts().items():
        assert part.equals(before.parts()[name])
        assert rows_sha256(part) == record.splits[name].rows_sha256
    assert len(steps) == 5 and record.gap == timedelta(minutes=10)
    newer = create_dataset(store, split="time")
    assert load_dataset_record(store.data_dir / "datasets", newer).rows == ROWS + 300


def test_time_ranges_and_training_job_records_are_listed(store: Settings) -> None:
    at = lambda m: T0 + timedelta(minutes=m)  # noqa: E731
    ranges = {"train": (None, at(250)), "validation": (at(250), at(300)), "test": (at(310), None)}
    n = create_dataset(store, ranges=ranges)
    record = load_dataset_record(store.data_dir / "datasets", n)
    assert record.ranges is not None and record.fractions is None
    assert dataset_hash(store, n) == record.rows_sha256
    from fti.features.training_data import build_dataset
    from fti.settings import TrainingSettings

    job = build_dataset(store.offline_dir, TrainingSettings(window_labels=300))
    m = save_dataset_version(store.data_dir / "datasets", job.record)
    assert list(list_datasets(store)) == [n, m]
    assert dataset_hash(store, m) == job.record.rows_sha256


def test_refusals_are_clear(store: Settings, tmp_path: Path) -> None:
    with pytest.raises(FtiError, match="unknown feature view 'fraud_v9'; known views: fraud_v1"):
        create_dataset(store, view="fraud_v9")
    with pytest.raises(FtiError, match="gap applies to time splits only"):
        create_dataset(store, split="random", gap=timedelta(hours=1))
    with pytest.raises(FtiError, match="must sum to 1"):
        create_dataset(store, fractions=(0.5, 0.2, 0.2))
    with pytest.raises(FtiError, match="ranges are needed for all of"):
        create_dataset(store, ranges={"train": (None, T0)})
    empty = Settings(data_dir=tmp_path / "empty")
    with pytest.raises(FtiError, match=r"no labelled rows in .*empty/offline; run the feature"):
        create_dataset(empty)
    _append(empty.offline_dir, *[t.slice(0, 0) for t in _batch(0, 1, seed=0)])
    with pytest.raises(FtiError, match="no labelled rows"):
        create_dataset(empty)
    assert list_datasets(empty) == {}


def test_cli_round_trip(store: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse("dataset", "create", "--split", "stratified", "--fractions", "0.7,0.1,0.2",
                  "--seed", "9")
    assert args.handler is run_dataset_command and args.fractions == (0.7, 0.1, 0.2)
    assert run_dataset_command(args, store) == 0
    assert capsys.readouterr().out.startswith("dataset 1: fraud_v1, stratified 0.7/0.1/0.2;")
    args = _parse("dataset", "create", "--gap", "1h30m", "--train-range",
                  "..2026-01-01T04:00:00Z", "--validation-range",
                  "2026-01-01T04:00:00Z..2026-01-01T05:00:00Z", "--test-range",
                  "2026-01-01T05:00:00+00:00..")
    assert args.gap == timedelta(minutes=90) and args.train_range[0] is None
    with pytest.raises(FtiError, match="drop --split / --gap"):
        run_dataset_command(args, store)
    args.gap = None
    assert run_dataset_command(args, store) == 0
    capsys.readouterr()
    assert run_dataset_command(_parse("dataset", "list"), store) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["N", "created", "(UTC)"] and len(table) == 3
    assert "stratified 0.7/0.1/0.2" in table[1] and "card_features@2 labels@2" in table[1]
    assert run_dataset_command(_parse("dataset", "show", "2", "--hash", "--json"), store) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == 2 and shown["ranges"]["test"][1] is None
    assert all(check["match"] for check in shown["hash_check"].values())
    assert run_dataset_command(_parse("dataset", "show", "1", "--hash"), store) == 0
    assert "re-read all        sha256" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["--gap", "1 hour"], ["--fractions", "0.5,0.5"], ["--train-range", "2026-01-01..2026-01-02"],
    ["--split", "kfold"], ["--test-range", "2026-01-01T00:00:00Z"],
])
def test_cli_rejects_bad_arguments(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        _parse("dataset", "create", *argv)


def test_show_reports_a_hash_mismatch(store: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    n = create_dataset(store)
    path = store.data_dir / "datasets" / f"{n}.json"
    record = json.loads(path.read_text())
    record["splits"]["test"]["rows_sha256"] = "0" * 64
    path.write_text(json.dumps(record))
    assert run_dataset_command(_parse("dataset", "show", str(n), "--hash"), store) == 1
    assert "MISMATCH" in capsys.readouterr().out
