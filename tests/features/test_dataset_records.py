"""Dataset records: how the sha256 of all rows is taken, old records included."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from fti.features.dataset_records import (
    DatasetRecord,
    SplitStats,
    dataset_sha256,
    rows_sha256,
    splits_sha256,
)

PARTS = {"train": pa.table({"x": [1, 2, 3]}), "validation": pa.table({"x": [4]}),
         "test": pa.table({"x": [5, 6]})}
T = datetime(2026, 1, 1, tzinfo=UTC)


def _record(**fields: object) -> DatasetRecord:
    stats = {name: SplitStats(rows=t.num_rows, positives=0, label_time_min=T, label_time_max=T,
                              rows_sha256=rows_sha256(t)) for name, t in PARTS.items()}
    return DatasetRecord(view="v", table_versions={"t": 1}, validation_fraction=0.2,
                         test_fraction=0.2, window_labels=0, seed=1, rows=6, splits=stats,
                         **fields)


def test_new_records_hash_each_row_once_through_their_splits() -> None:
    digests = {name: rows_sha256(t) for name, t in PARTS.items()}
    record = _record(rows_sha256=splits_sha256(digests), rows_sha256_of="splits")
    assert dataset_sha256(record, PARTS) == record.rows_sha256
    moved = {**PARTS, "test": pa.table({"x": [5]}), "train": pa.table({"x": [1, 2, 3, 6]})}
    assert dataset_sha256(record, moved) != record.rows_sha256  # a row in another split


def test_a_record_written_before_split_hashes_is_checked_the_old_way() -> None:
    written = _record(rows_sha256=rows_sha256(pa.concat_tables(PARTS.values()))).model_dump()
    del written["rows_sha256_of"]  # the field did not exist then
    old = DatasetRecord.model_validate(written)
    assert old.rows_sha256_of == "rows"
    assert dataset_sha256(old, PARTS) == old.rows_sha256
