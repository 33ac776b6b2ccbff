"""Versioned training datasets of a declared model: its view's point-in-time rows
(`model_table`: labelled rows whose event is materialized), recorded with the offline table
versions they were read at, the split and the sha256 of the rows.

The training job (`build_model_dataset`) keeps the newest `window_labels` rows and splits
them by the label's event time (oldest train, then validation, newest test) with the same
split code as `fti dataset` (`fti.features.splits`). Reading the recorded versions again
(`build_model_dataset(..., versions=record.table_versions)`) rebuilds the same rows, which
the record's `rows_sha256` proves.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from fti.features.dataset_records import (
    DatasetRecord,
    Split,
    SplitStats,
    TrainingDataset,
    rows_sha256,
    splits_sha256,
)
from fti.features.errors import TrainingDataError
from fti.features.project.model import Model
from fti.features.project.tables import EVENT_TIME
from fti.features.project.training import read_view_at
from fti.features.splits import time_split
from fti.settings import TrainingSettings

#: Fewest train rows a model is trained on.
MIN_TRAIN_ROWS = 50


def model_table(model: Model, view_table: pa.Table) -> pa.Table:
    """The view's rows a model learns from: labelled rows only, in (event time, keys) order.

    >>> from fti.features.project import Field, Stream, FeatureGroup, FeatureView, Label, agg
    >>> s = Stream("s", topic="s", id="i", event_time="ts", fields=[Field("i"),
    ...            Field("x", "float"), Field("y", "int"), Field("ts", "timestamp")])
    >>> g = FeatureGroup("g", entity="i", stream=s, aggregations=[agg.sum("x", window="1h")])
    >>> m = Model("m", FeatureView("v", Label("y", s, value="y"), [g]))
    >>> t = pa.table({"i": ["b", "a", "c"], "y": [1, 0, None], "event_time": [2, 1, 3],
    ...               "g__x_sum_1h": [1.0, 2.0, 3.0]})
    >>> model_table(m, t)["i"].to_pylist()
    ['a', 'b']
    """
    label = model.label_column()
    table = view_table.filter(pc.is_valid(view_table[label]))
    for group in model.view.groups:
        if model.view.join_key(group) != group.stream.id:
            continue
        # Joined on the very event labelled: no row of the group yet means the event is not
        # materialized yet (labels are stored independently), not that it has no features.
        columns = [model.view.column(group, f) for f in group.feature_names()
                   if model.view.column(group, f) in table.column_names]
        if columns:
            table = table.filter(_any_valid(table, columns))
    keys = [c for c in model.view.label.stream.field_map() if c in table.column_names]
    order = [EVENT_TIME, *(k for k in keys if k != label), label]
    return table.sort_by([(c, "ascending") for c in dict.fromkeys(order)])


def _any_valid(table: pa.Table, columns: list[str]) -> pa.ChunkedArray:
    found = pc.is_valid(table[columns[0]])
    for column in columns[1:]:
        found = pc.or_(found, pc.is_valid(table[column]))
    return found


def split_stats(model: Model, table: pa.Table) -> SplitStats:
    """Rows, positives (binary tasks; else 0), time range and row hash of one split."""
    label = table[model.label_column()]
    positives = 0
    if model.task == "binary" and table.num_rows:
        positives = int(pc.sum(pc.cast(label, pa.int64())).as_py() or 0)
    times = table[EVENT_TIME]
    return SplitStats(rows=table.num_rows, positives=positives,
                      label_time_min=pc.min(times).as_py(), label_time_max=pc.max(times).as_py(),
                      rows_sha256=rows_sha256(table))


def read_model_rows(model: Model, offline_location: str,
                    versions: Mapping[str, int] | None = None,
                    window_labels: int = 0) -> tuple[pa.Table, dict[str, int]]:
    """The model's rows (`model_table` of its view read at `versions`, default: latest), the
    newest `window_labels` of them (0: all), and the version read of each offline table."""
    if window_labels < 0:
        raise TrainingDataError(f"window_labels must be >= 0 (0: all rows), got {window_labels}")
    view_table, read = read_view_at(model.view, offline_location, versions)
    table = model_table(model, view_table)
    if window_labels:
        table = table.slice(max(0, table.num_rows - window_labels))
    return table, read


def dataset_record(model: Model, table_versions: Mapping[str, int], split: Split, *,
                   kind: str = "time", seed: int = 42, window_labels: int = 0,
                   fractions: tuple[float, float, float] | None = None,
                   validation_fraction: float | None = None,
                   test_fraction: float | None = None, gap: timedelta | None = None,
                   ranges: Mapping[str, tuple[datetime | None, datetime | None]] | None = None,
                   ) -> DatasetRecord:
    """The record of `split`, a dataset of `model` read at `table_versions`: the split as
    asked (validation and test fractions default to those of `fractions`, else to the
    shares the split produced), rows, positives, time range and sha256 per split and in all."""
    parts = split.parts()
    rows = sum(t.num_rows for t in parts.values())
    produced = [t.num_rows / rows if rows else 0.0 for t in parts.values()]
    shares = fractions or produced
    stats = {name: split_stats(model, part) for name, part in parts.items()}
    return DatasetRecord(
        view=model.view.name, model=model.name, table_versions=dict(table_versions),
        split=kind,  # type: ignore[arg-type]
        validation_fraction=shares[1] if validation_fraction is None else validation_fraction,
        test_fraction=shares[2] if test_fraction is None else test_fraction,
        window_labels=window_labels, seed=seed, rows=rows,
        rows_sha256=splits_sha256({name: s.rows_sha256 for name, s in stats.items()}),
        rows_sha256_of="splits", splits=stats,
        fractions=fractions, gap=gap or None,
        ranges=None if ranges is None else {k: tuple(v) for k, v in ranges.items()},
    )


def build_model_dataset(model: Model, offline_location: str, training: TrainingSettings,
                        versions: Mapping[str, int] | None = None) -> TrainingDataset:
    """Read the model's view at `versions` (default: latest), keep the newest
    `training.window_labels` labelled rows and split them by time (`time_split`, a split
    may be empty: `check_trainable` says so)."""
    table, read = read_model_rows(model, offline_location, versions, training.window_labels)
    validation, test = training.validation_fraction, training.test_fraction
    split = time_split(table, (1 - validation - test, validation, test), allow_empty=True)
    record = dataset_record(model, read, split, kind="time", seed=training.seed,
                            window_labels=training.window_labels,
                            validation_fraction=validation, test_fraction=test)
    return TrainingDataset(split=split, record=record)


def check_trainable(model: Model, dataset: TrainingDataset) -> None:
    """Refuse (TrainingDataError) a dataset too small to train and test `model`, or whose
    train split holds a single class for a classification task."""
    hint = "wait for more labels, or lower training.window_labels / the split fractions"
    train = dataset.split.train
    if train.num_rows < MIN_TRAIN_ROWS:
        raise TrainingDataError(
            f"model {model.name}: the train split has {train.num_rows} rows, need at least "
            f"{MIN_TRAIN_ROWS} ({dataset.record.rows} labelled rows of view "
            f"{model.view.name} in all); {hint}")
    if model.task in ("binary", "multiclass", "preference"):
        classes = pc.count_distinct(train[model.label_column()]).as_py()
        if classes < 2:
            raise TrainingDataError(
                f"model {model.name}: the train split ({train.num_rows} rows) holds one class "
                f"of {model.label_column()}; a classifier needs two; {hint}")
    if dataset.split.validation.num_rows == 0 or dataset.split.test.num_rows == 0:
        raise TrainingDataError(
            f"model {model.name}: the validation or test split is empty "
            f"({dataset.record.rows} labelled rows); {hint}")
