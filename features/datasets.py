"""Versioned training datasets of a declared model: its view's rows -> split -> Parquet + record.

``create_dataset`` reads the model's feature view at the latest version of each offline table
(`read_view_at`), keeps the rows the model learns from (`model_table`: labelled rows whose event
is materialized), splits them (`fti.features.splits`: by the label's ``event_time``, at random,
or stratified on the model's label), writes ``<data_dir>/datasets/<N>/{train,validation,
test}.parquet`` and records version N (``<data_dir>/datasets/<N>.json``: view, model, table
versions, split kind, fractions or ranges, gap, seed, row counts, sha256 per split).
``read_dataset`` rebuilds the rows from the recorded table versions, not from the Parquet files,
so ``dataset_hash`` proves the dataset can be reproduced after the offline store has grown. The
training job's records (`build_model_dataset`) share the folder and are rebuilt the same way.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from fti.features.dataset_records import (
    DatasetRecord,
    Split,
    dataset_sha256,
    dataset_versions,
    load_dataset_record,
    save_dataset_version,
)
from fti.features.errors import DefinitionError, SplitError, TrainingDataError
from fti.features.project.datasets import build_model_dataset, dataset_record, read_model_rows
from fti.features.project.model import Model
from fti.features.splits import (
    SPLIT_NAMES,
    TIME_COLUMN,
    TimeRange,
    check_fractions,
    random_split,
    stratified_split,
    time_range_split,
    time_split,
)
from fti.settings import Settings, TrainingSettings

if TYPE_CHECKING:
    from fti.features.project.loader import Project

logger = logging.getLogger(__name__)

SPLIT_KINDS = ("time", "random", "stratified")
#: Tasks whose label is a class: the ones a stratified split applies to.
CLASSIFICATION_TASKS = ("binary", "multiclass", "preference")
#: What create_dataset reports to ``on_step``, in order (for a progress bar).
CREATE_STEPS = ("read view", "split", "write parquet", "record")


def datasets_dir(settings: Settings) -> Path:
    """Where dataset records and their Parquet directories live."""
    return settings.data_dir / "datasets"


def dataset_files(settings: Settings, n: int) -> dict[str, Path]:
    """The Parquet file of each split of dataset ``n`` (they exist only for created datasets)."""
    return {name: datasets_dir(settings) / str(n) / f"{name}.parquet" for name in SPLIT_NAMES}


def project_model(project: Project, name: str | None = None) -> Model:
    """The project's model ``name`` (the only one when None); DefinitionError naming the
    declared ones otherwise."""
    if name is None and len(project.models) == 1:
        return next(iter(project.models.values()))
    model = project.models.get(name) if name is not None else None
    if model is None:
        declared = ", ".join(sorted(project.models)) or "none"
        what = "name one with --model" if name is None else f"unknown model {name!r}"
        raise DefinitionError(f"{what}; the project in {project.directory} declares {declared}")
    return model


def create_dataset(
    settings: Settings,
    model: Model,
    split: str = "time",
    fractions: tuple[float, float, float] = (0.65, 0.15, 0.2),
    seed: int = 42,
    gap: timedelta | None = None,
    ranges: Mapping[str, TimeRange] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> int:
    """Build, write and record a dataset version of ``model``'s view; return its number N.

    ``split`` is "time" (by the label's event time, optionally ``gap`` apart, or by explicit
    ``ranges`` of it for "train", "validation" and "test"), "random" or "stratified" (on the
    model's label; classification tasks only). ``on_step`` is called with each name of
    ``CREATE_STEPS`` as that step finishes.
    """
    spec = _split_spec(model, split, fractions, gap, ranges)
    step = on_step or (lambda name: None)
    table, read = read_model_rows(model, str(settings.offline_location))
    if table.num_rows == 0:
        raise TrainingDataError(
            f"model {model.name}: no labelled rows of view {model.view.name} in "
            f"{settings.offline_location} (tables {_versions_text(read)}); a label counts once "
            "its event is materialized: run `fti materialize` or `fti backfill` first")
    step(CREATE_STEPS[0])
    parts = apply_split(table, split, seed=seed, label=model.label_column(), **spec)
    step(CREATE_STEPS[1])
    record = dataset_record(model, read, parts, kind=split, seed=seed, **spec)
    number = _write(settings, record, parts, step)
    logger.info("dataset %d of model %s: %s", number, model.name,
                {k: v.rows for k, v in record.splits.items()})
    return number


def apply_split(
    table: pa.Table,
    kind: str,
    *,
    fractions: tuple[float, float, float] | None = None,
    seed: int = 42,
    gap: timedelta | None = None,
    ranges: Mapping[str, TimeRange] | None = None,
    label: str | None = None,
    time_column: str = TIME_COLUMN,
) -> Split:
    """Split ``table`` as a dataset record describes: by kind, fractions or ranges, gap, seed;
    time splits on ``time_column``, stratified ones on the class column ``label``."""
    if ranges is not None:
        return time_range_split(table, ranges["train"], ranges["validation"], ranges["test"],
                                time_column=time_column)
    if fractions is None:
        raise SplitError("a split needs fractions (train, validation, test) or time ranges")
    if kind == "time":
        return time_split(table, fractions, gap, time_column=time_column)
    if kind == "random":
        return random_split(table, fractions, seed)
    if kind == "stratified":
        if label is None:
            raise SplitError("a stratified split needs the label column to stratify on")
        return stratified_split(table, fractions, seed, label)
    raise SplitError(f"split must be one of {', '.join(SPLIT_KINDS)}, got {kind!r}")


def record_model(project: Project, record: DatasetRecord) -> Model:
    """The project's model that rebuilds ``record``'s rows: the recorded model, else (a record
    without one) a model of the recorded view, as any model of a view selects the same rows."""
    if record.model is not None:
        model = project.models.get(record.model)
        if model is None:
            raise TrainingDataError(
                f"the dataset was built for model {record.model}, which the project in "
                f"{project.directory} does not declare "
                f"({', '.join(sorted(project.models)) or 'no models'})")
        if model.view.name != record.view:
            raise TrainingDataError(
                f"the dataset was built from view {record.view}; model {model.name} now "
                f"learns view {model.view.name}, so its rows cannot be rebuilt")
        return model
    of_view = sorted((m for m in project.models.values() if m.view.name == record.view),
                     key=lambda m: m.name)
    if not of_view:
        raise TrainingDataError(f"the dataset was built from view {record.view}, which no "
                                f"model of the project in {project.directory} learns")
    return of_view[0]


def read_dataset(settings: Settings, project: Project, n: int) -> Split:
    """Dataset ``n``'s rows, rebuilt from the offline tables at the recorded versions."""
    record = load_dataset_record(datasets_dir(settings), n)
    model = record_model(project, record)
    location = str(settings.offline_location)
    if record.fractions is None and record.ranges is None:  # recorded by the training job
        training = TrainingSettings(
            window_labels=record.window_labels,
            validation_fraction=record.validation_fraction,
            test_fraction=record.test_fraction,
            seed=record.seed,
        )
        return build_model_dataset(model, location, training, record.table_versions).split
    table, _ = read_model_rows(model, location, record.table_versions, record.window_labels)
    return apply_split(table, record.split, fractions=record.fractions, seed=record.seed,
                       gap=record.gap, ranges=record.ranges, label=model.label_column())


def dataset_hash(settings: Settings, project: Project, n: int) -> str:
    """sha256 of dataset ``n``'s re-read rows (all splits); equals its record's rows_sha256."""
    record = load_dataset_record(datasets_dir(settings), n)
    return dataset_sha256(record, read_dataset(settings, project, n).parts())


def list_datasets(settings: Settings) -> dict[int, DatasetRecord]:
    """Every recorded dataset version by number, ascending (training-job records included)."""
    folder = datasets_dir(settings)
    return {n: load_dataset_record(folder, n) for n in dataset_versions(folder)}


def _split_spec(
    model: Model,
    kind: str,
    fractions: tuple[float, float, float],
    gap: timedelta | None,
    ranges: Mapping[str, TimeRange] | None,
) -> dict[str, Any]:
    """Check the split arguments before any data is read; the keywords of ``apply_split``."""
    if kind not in SPLIT_KINDS:
        raise SplitError(f"split must be one of {', '.join(SPLIT_KINDS)}, got {kind!r}")
    if kind == "stratified" and model.task not in CLASSIFICATION_TASKS:
        raise SplitError(
            f"model {model.name} is a {model.task} model: a stratified split keeps each class's "
            f"share of {model.label_column()} and needs a classification task "
            f"({', '.join(CLASSIFICATION_TASKS)}); use a time or random split")
    if gap is not None and kind != "time":
        raise SplitError(f"a gap applies to time splits only, not to a {kind} split")
    if ranges is None:
        return {"fractions": check_fractions(fractions), "gap": gap or None}
    if kind != "time" or gap:
        raise SplitError("time ranges make a time split of their own; drop --split / --gap")
    if set(ranges) != set(SPLIT_NAMES):
        raise SplitError(f"time ranges are needed for all of {', '.join(SPLIT_NAMES)}, "
                         f"got {', '.join(ranges) or 'none'}")
    return {"ranges": {name: tuple(ranges[name]) for name in SPLIT_NAMES}}


def _versions_text(versions: Mapping[str, int]) -> str:
    return " ".join(f"{name}@{v}" for name, v in sorted(versions.items()))


def _write(
    settings: Settings, record: DatasetRecord, parts: Split, step: Callable[[str], None]
) -> int:
    """Write the Parquet files to a staging directory, record the version, then move them in."""
    folder = datasets_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder))
    try:
        for name, table in parts.parts().items():
            pq.write_table(table, staging / f"{name}.parquet")
        step(CREATE_STEPS[2])
        number = save_dataset_version(folder, record)
        target = folder / str(number)
        if target.exists():  # left behind by a record deleted by hand; keep it, out of the way
            aside = folder / f".orphan-{number}-{staging.name}"
            logger.warning("%s has no record; moving it to %s", target, aside)
            target.rename(aside)
        staging.rename(target)
        step(CREATE_STEPS[3])
        return number
    finally:
        shutil.rmtree(staging, ignore_errors=True)
