"""Point-in-time join, splits, row hashes and offline reads of features/training_data.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
import pytest

from fti.errors import FtiError
from fti.features.definitions import (
    FEATURE_COLUMNS,
    FEATURES_SCHEMA,
    FEATURES_TABLE,
    LABELS_SCHEMA,
    LABELS_TABLE,
)
from fti.features.training_data import (
    TRAINING_COLUMNS,
    DatasetRecord,
    load_dataset_record,
    newest,
    point_in_time_join,
    read_offline,
    rows_sha256,
    save_dataset_version,
    time_split,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")


def _random_tables(seed: int, n_features: int = 400, n_labels: int = 300) -> tuple[pa.Table, ...]:
    """Few tx ids and few distinct times, so ties and repeated tx rows are common."""
    rng = np.random.default_rng(seed)
    tx = rng.integers(0, 60, n_features)
    features = {
        "tx_id": [f"tx{i}" for i in tx],
        "card_id": [f"card{i % 7}" for i in tx],
        "event_time": [T0 + timedelta(seconds=int(s)) for s in rng.integers(0, 50, n_features)],
        **{name: rng.normal(size=n_features) for name in FEATURE_COLUMNS},
        "source_topic": ["transactions"] * n_features,
        "source_partition": rng.integers(0, 2, n_features).astype(np.int32),
        "source_offset": rng.permutation(n_features).astype(np.int64),
        "source_topic_id": ["id1"] * n_features,
    }
    label_tx = rng.integers(0, 70, n_labels)  # tx 60..69 have no feature rows
    labels = {
        "tx_id": [f"tx{i}" for i in label_tx],
        "is_fraud": rng.integers(0, 2, n_labels).astype(np.int8),
        "event_time": [T0 + timedelta(seconds=int(s)) for s in rng.integers(0, 50, n_labels)],
        "source_topic": ["labels"] * n_labels,
        "source_partition": np.zeros(n_labels, dtype=np.int32),
        "source_offset": np.arange(n_labels, dtype=np.int64),
        "source_topic_id": ["id2"] * n_labels,
    }
    return (
        pa.Table.from_pydict(features, schema=FEATURES_SCHEMA),
        pa.Table.from_pydict(labels, schema=LABELS_SCHEMA),
    )


def _brute_force_join(features: pa.Table, labels: pa.Table) -> list[tuple]:
    rows = features.to_pylist()
    out = []
    for label in labels.to_pylist():
        candidates = [
            r
            for r in rows
            if r["tx_id"] == label["tx_id"] and r["event_time"] <= label["event_time"]
        ]
        if not candidates:
            continue
        best = max(
            candidates,
            key=lambda r: (
                r["event_time"],
                r["source_topic"],
                r["source_partition"],
                r["source_offset"],
            ),
        )
        out.append(
            (
                label["tx_id"],
                best["card_id"],
                label["event_time"],
                best["event_time"],
                *[best[name] for name in FEATURE_COLUMNS],
                label["is_fraud"],
            )
        )
    return sorted(out, key=lambda r: (r[2], r[0], r[-1]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_point_in_time_join_matches_brute_force(seed: int) -> None:
    features, labels = _random_tables(seed)
    joined = point_in_time_join(features, labels)
    assert tuple(joined.column_names) == TRAINING_COLUMNS
    got = [tuple(row.values()) for row in joined.to_pylist()]
    expected = _brute_force_join(features, labels)
    assert len(expected) < labels.num_rows  # some labels had no feature row in time
    assert [r[:4] + r[-1:] for r in got] == [r[:4] + r[-1:] for r in expected]
    assert got == expected


def test_point_in_time_join_never_sees_the_future() -> None:
    features, labels = _random_tables(3)
    joined = point_in_time_join(features, labels)
    times = joined.to_pydict()
    assert all(f <= lt for f, lt in zip(times["feature_time"], times["label_time"], strict=True))


def test_point_in_time_join_with_ttl_drops_stale_rows() -> None:
    features, labels = _random_tables(4)
    ttl = timedelta(seconds=5)
    joined = point_in_time_join(features, labels, ttl=ttl).to_pydict()
    full = point_in_time_join(features, labels)
    assert 0 < len(joined["tx_id"]) < full.num_rows
    assert all(
        lt - f <= ttl for f, lt in zip(joined["feature_time"], joined["label_time"], strict=True)
    )


def _training_table(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    times = [T0 + timedelta(seconds=int(s)) for s in rng.permutation(n)]
    return pa.table(
        {
            "tx_id": [f"tx{i}" for i in range(n)],
            "label_time": pa.array(times, TS),
            "feature_time": pa.array(times, TS),
            **{name: rng.normal(size=n) for name in FEATURE_COLUMNS},
            "is_fraud": rng.integers(0, 2, n).astype(np.int8),
        }
    )


def test_time_split_orders_by_label_time_and_sizes() -> None:
    table = _training_table(101)
    split = time_split(table, 0.15, 0.2)
    assert (split.train.num_rows, split.validation.num_rows, split.test.num_rows) == (66, 15, 20)
    parts = [part["label_time"].to_pylist() for part in split.parts().values()]
    for part in parts:
        assert part == sorted(part)
    assert max(parts[0]) < min(parts[1]) and max(parts[1]) < min(parts[2])
    assert rows_sha256(pa.concat_tables(list(split.parts().values()))) == rows_sha256(table)


def test_time_split_refuses_fractions_that_leave_nothing_to_train() -> None:
    with pytest.raises(FtiError, match="leave rows to train"):
        time_split(_training_table(10), 0.5, 0.5)


def test_newest_keeps_the_latest_rows() -> None:
    table = _training_table(50)
    kept = newest(table, 10)
    assert kept.num_rows == 10
    assert min(kept["label_time"].to_pylist()) > max(
        newest(table, 0).slice(0, 40)["label_time"].to_pylist()
    )
    assert newest(table, 0).num_rows == 50 and newest(table, 500).num_rows == 50


def test_rows_sha256_is_stable_and_sensitive() -> None:
    table = _training_table(30)
    digest = rows_sha256(table)
    assert digest == rows_sha256(table)
    shuffled = table.take(np.random.default_rng(1).permutation(30))
    rechunked = pa.concat_tables([shuffled.slice(0, 7), shuffled.slice(7)])
    assert rows_sha256(rechunked) == digest
    amounts = table["amount"].to_numpy().copy()
    amounts[5] += 1e-9
    changed = table.set_column(table.column_names.index("amount"), "amount", pa.array(amounts))
    assert rows_sha256(changed) != digest


def _write_offline(path: Path) -> None:
    features, labels = _random_tables(5, n_features=40, n_labels=30)
    db = lancedb.connect(str(path))
    db.create_table(FEATURES_TABLE, data=features, schema=FEATURES_SCHEMA)
    db.create_table(LABELS_TABLE, data=labels, schema=LABELS_SCHEMA)


def test_read_offline_dedupes_replayed_rows_and_pins_versions(tmp_path: Path) -> None:
    _write_offline(tmp_path)
    db = lancedb.connect(str(tmp_path))
    first = read_offline(tmp_path)
    replay = db.open_table(FEATURES_TABLE).to_arrow().slice(10, 5)  # same source offsets again
    db.open_table(FEATURES_TABLE).add(replay)
    replay_labels = db.open_table(LABELS_TABLE).to_arrow().slice(0, 3)
    db.open_table(LABELS_TABLE).add(replay_labels)
    assert db.open_table(FEATURES_TABLE).count_rows() == 45

    snapshot = read_offline(tmp_path)
    assert snapshot.features.num_rows == 40 and snapshot.labels.num_rows == 30
    assert snapshot.table_versions == {
        FEATURES_TABLE: first.table_versions[FEATURES_TABLE] + 1,
        LABELS_TABLE: first.table_versions[LABELS_TABLE] + 1,
    }
    assert rows_sha256(snapshot.features) == rows_sha256(first.features)
    pinned = read_offline(tmp_path, first.table_versions)
    assert pinned.table_versions == first.table_versions


def test_read_offline_names_a_missing_table(tmp_path: Path) -> None:
    with pytest.raises(FtiError, match="card_features.*not found"):
        read_offline(tmp_path)


def test_dataset_versions_are_numbered_and_immutable(tmp_path: Path) -> None:
    record = DatasetRecord(
        table_versions={"card_features": 3, "labels": 2},
        validation_fraction=0.15,
        test_fraction=0.2,
        window_labels=0,
        seed=42,
        rows=0,
        rows_sha256="0" * 64,
        splits={},
    )
    assert save_dataset_version(tmp_path, record) == 1
    assert save_dataset_version(tmp_path, record.model_dump()) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.json", "2.json"]
    loaded = load_dataset_record(tmp_path, 1)
    assert loaded == record and loaded.view == "fraud_v1" and loaded.split == "time"
    with pytest.raises(FtiError, match="dataset version 9 not found"):
        load_dataset_record(tmp_path, 9)
