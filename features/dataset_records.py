"""Versioned training datasets as records: splits, their statistics, row hashes, and the
numbered record files under ``<data_dir>/datasets/``.

A record names the feature view (and model) a dataset was built for, the offline table
versions it was read at, how it was split, and the sha256 of its rows, so reading those
versions again can prove the same rows come back.

>>> import pyarrow as pa
>>> t = pa.table({"x": [1, 2, 3]})
>>> split = Split(train=t.slice(0, 2), validation=t.slice(2, 1), test=t.slice(3))
>>> [p.num_rows for p in split.parts().values()]
[2, 1, 0]
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from fti.features.errors import TrainingDataError


@dataclass(frozen=True)
class Split:
    """The train, validation and test tables of one dataset."""

    train: pa.Table
    validation: pa.Table
    test: pa.Table

    def parts(self) -> dict[str, pa.Table]:
        """The three tables by name: train, validation, test."""
        return {"train": self.train, "validation": self.validation, "test": self.test}


class SplitStats(BaseModel):
    """Size, positives (binary labels), label-time range and row hash of one part of a split."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rows: int
    positives: int
    label_time_min: datetime | None
    label_time_max: datetime | None
    rows_sha256: str


class DatasetRecord(BaseModel):
    """What a training dataset version is made of; enough to rebuild identical rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The feature view the rows come from.
    view: str
    #: The model the dataset was built for (its label column and task); None in records
    #: written before models were recorded.
    model: str | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    table_versions: dict[str, int]
    split: Literal["time", "random", "stratified"] = "time"
    validation_fraction: float
    test_fraction: float
    #: The newest this many labelled rows were kept (0: all).
    window_labels: int
    seed: int
    rows: int
    #: sha256 of all rows: of the split hashes (`splits_sha256`, "splits": each row is
    #: hashed once) or, in records written before 2026-12-03, of the rows ("rows").
    rows_sha256: str
    rows_sha256_of: Literal["rows", "splits"] = "rows"
    splits: dict[str, SplitStats]
    #: (train, validation, test) as asked of `fti dataset create`; None for training-job
    #: records (a time split by validation_fraction and test_fraction) and time ranges.
    fractions: tuple[float, float, float] | None = None
    #: Time splits: rows this close after the previous split's end were dropped.
    gap: timedelta | None = None
    #: Time-range splits: [start, end) of the label time per split name (None: open).
    ranges: dict[str, tuple[datetime | None, datetime | None]] | None = None


@dataclass(frozen=True)
class TrainingDataset:
    """A split ready for training and the record that describes it."""

    split: Split
    record: DatasetRecord


def rows_sha256(table: pa.Table) -> str:
    """Hash the rows, independent of their order, chunking, nullability flags and metadata.

    >>> a = pa.table({"x": [1, 2], "y": ["p", "q"]})
    >>> rows_sha256(a) == rows_sha256(a.take([1, 0]))
    True
    """
    schema = pa.schema([pa.field(f.name, f.type, nullable=True) for f in table.schema])
    canonical = table.cast(schema)
    canonical = canonical.sort_by([(name, "ascending") for name in schema.names]).combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_table(canonical)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def splits_sha256(split_hashes: Mapping[str, str]) -> str:
    """One sha256 of a dataset's rows from its splits' row hashes (`rows_sha256` of each):
    the rows are hashed once, per split, and a dataset is named by its splits.

    >>> splits_sha256({"train": "ab", "test": "cd"}) == splits_sha256({"test": "cd", "train": "ab"})
    True
    """
    text = "".join(f"{name}:{digest}\n" for name, digest in sorted(split_hashes.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def dataset_sha256(record: DatasetRecord, parts: Mapping[str, pa.Table],
                   split_hashes: Mapping[str, str] | None = None) -> str:
    """The sha256 of all rows of `parts` the way `record` took it (`rows_sha256_of`);
    `split_hashes` are the parts' `rows_sha256` when the caller has them already."""
    if record.rows_sha256_of == "splits":
        if split_hashes is None:
            split_hashes = {name: rows_sha256(table) for name, table in parts.items()}
        return splits_sha256(split_hashes)
    return rows_sha256(pa.concat_tables(parts.values()))


def save_dataset_version(datasets_dir: Path, record: DatasetRecord | Mapping[str, Any]) -> int:
    """Write ``record`` as ``datasets_dir/<N>.json`` with the next free N (from 1); return N.

    Files are never overwritten: the record is written to a temp file and hard-linked into place,
    which fails if another writer took N first, in which case the next N is tried.
    """
    record = DatasetRecord.model_validate(record)
    datasets_dir = Path(datasets_dir)
    datasets_dir.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=datasets_dir)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(record.model_dump_json(indent=2))
        while True:
            number = max(dataset_versions(datasets_dir), default=0) + 1
            try:
                os.link(temp, datasets_dir / f"{number}.json")
            except FileExistsError:
                continue
            return number
    finally:
        os.unlink(temp)


def dataset_versions(datasets_dir: Path) -> list[int]:
    """Dataset version numbers saved in ``datasets_dir``, ascending."""
    if not Path(datasets_dir).is_dir():
        return []
    names = (p.stem for p in Path(datasets_dir).glob("*.json"))
    return sorted(int(stem) for stem in names if stem.isdigit())


def load_dataset_record(datasets_dir: Path, n: int) -> DatasetRecord:
    """Read dataset version ``n`` from ``datasets_dir``."""
    path = Path(datasets_dir) / f"{int(n)}.json"
    if not path.is_file():
        have = dataset_versions(datasets_dir)
        raise TrainingDataError(f"dataset version {n} not found in {datasets_dir} (have {have})")
    return DatasetRecord.model_validate_json(path.read_text())
