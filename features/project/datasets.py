"""Versioned training datasets of a declared model: its view's point-in-time rows, the
newest `window_labels` of them, split by the label's event time (oldest train, then
validation, newest test), recorded with the offline table versions they were read at.

Reading the recorded versions again (`build_model_dataset(..., versions=record.table_versions)`)
rebuilds the same rows, which the record's `rows_sha256` proves.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from fti.features.errors import TrainingDataError
from fti.features.project.model import Model
from fti.features.project.tables import EVENT_TIME
from fti.features.project.training import read_view_at
from fti.features.training_data import (
    DatasetRecord,
    Split,
    SplitStats,
    TrainingDataset,
    rows_sha256,
)
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


def split_by_time(table: pa.Table, validation_fraction: float, test_fraction: float) -> Split:
    """Oldest rows train, then validation, newest test (`table` is in time order)."""
    n = table.num_rows
    n_test = round(n * test_fraction)
    n_validation = round(n * validation_fraction)
    n_train = max(0, n - n_test - n_validation)
    return Split(train=table.slice(0, n_train), validation=table.slice(n_train, n_validation),
                 test=table.slice(n_train + n_validation))


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


def build_model_dataset(model: Model, offline_location: str, training: TrainingSettings,
                        versions: Mapping[str, int] | None = None) -> TrainingDataset:
    """Read the model's view at `versions` (default: latest), keep the newest
    `training.window_labels` labelled rows and split them by time."""
    view_table, read = read_view_at(model.view, offline_location, versions)
    table = model_table(model, view_table)
    if training.window_labels:
        table = table.slice(max(0, table.num_rows - training.window_labels))
    split = split_by_time(table, training.validation_fraction, training.test_fraction)
    record = DatasetRecord(
        view=model.view.name, table_versions=read,
        validation_fraction=training.validation_fraction, test_fraction=training.test_fraction,
        window_labels=training.window_labels, seed=training.seed, rows=table.num_rows,
        rows_sha256=rows_sha256(table),
        splits={name: split_stats(model, part) for name, part in split.parts().items()},
    )
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
