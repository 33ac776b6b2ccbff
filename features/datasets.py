"""Versioned training datasets: offline store -> feature view -> split -> Parquet + a record.

``create_dataset`` reads both offline tables at one Lance version each, joins them through a
feature view, splits the rows, writes ``<data_dir>/datasets/<N>/{train,validation,test}.parquet``
and records version N (``<data_dir>/datasets/<N>.json``: view, table versions, split kind,
fractions or ranges, gap, seed, row counts, sha256 per split). ``read_dataset`` rebuilds the
rows from the recorded Lance versions, not from the Parquet files, so ``dataset_hash`` proves
the dataset can be reproduced after the offline store has grown.
"""

from __future__ import annotations

import functools
import logging
import shutil
import tempfile
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fti.connectors.offline.store import LanceOfflineStore
from fti.features.definitions import FEATURES_TABLE, LABELS_TABLE
from fti.features.errors import FeatureViewError, SplitError, TrainingDataError
from fti.features.splits import (
    SPLIT_NAMES,
    TimeRange,
    check_fractions,
    random_split,
    stratified_split,
    time_range_split,
    time_split,
)
from fti.features.training_data import (
    VIEW_NAME,
    DatasetRecord,
    OfflineSnapshot,
    Split,
    build_dataset,
    dataset_versions,
    load_dataset_record,
    point_in_time_join,
    read_offline,
    rows_sha256,
    save_dataset_version,
    split_stats,
)
from fti.settings import Settings, TrainingSettings

logger = logging.getLogger(__name__)

View = Callable[[pa.Table, pa.Table], pa.Table]
#: Feature views by name: (offline features, offline labels) -> one training row per label.
SPLIT_KINDS = ("time", "random", "stratified")
#: What create_dataset reports to ``on_step``, in order (for a progress bar).
CREATE_STEPS = ("read offline store", "join feature view", "split", "write parquet", "record")


def feature_view(name: str) -> View:
    """The point-in-time join of the declared feature view ``name`` (`fti.features.fraud.CATALOG`),
    with the view's lookback as TTL; FeatureViewError listing the known views if there is none.

    >>> feature_view("fraud_v1")(*_empty_tables()).num_rows
    0
    """
    from fti.features.fraud import CATALOG

    known = sorted({v.name for v in CATALOG.views()})
    if name not in known:
        raise FeatureViewError(f"unknown feature view {name!r}; known views: {', '.join(known)}")
    lookback = CATALOG.view(name).lookback
    return functools.partial(point_in_time_join, ttl=lookback)


def _empty_tables() -> tuple[pa.Table, pa.Table]:
    from fti.features.definitions import FEATURES_SCHEMA, LABELS_SCHEMA

    return FEATURES_SCHEMA.empty_table(), LABELS_SCHEMA.empty_table()


def datasets_dir(settings: Settings) -> Path:
    """Where dataset records and their Parquet directories live."""
    return settings.data_dir / "datasets"


def dataset_files(settings: Settings, n: int) -> dict[str, Path]:
    """The Parquet file of each split of dataset ``n`` (they exist only for created datasets)."""
    return {name: datasets_dir(settings) / str(n) / f"{name}.parquet" for name in SPLIT_NAMES}


def create_dataset(
    settings: Settings,
    view: str = VIEW_NAME,
    split: str = "time",
    fractions: tuple[float, float, float] = (0.65, 0.15, 0.2),
    seed: int = 42,
    gap: timedelta | None = None,
    ranges: Mapping[str, TimeRange] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> int:
    """Build, write and record a dataset version from the offline store; return its number N.

    ``split`` is "time" (by label time, optionally ``gap`` apart, or by explicit ``ranges`` of
    label time for "train", "validation" and "test"), "random" or "stratified" (by is_fraud).
    ``on_step`` is called with each name of ``CREATE_STEPS`` as that step finishes.
    """
    join = feature_view(view)
    spec = _split_spec(split, fractions, gap, ranges)
    step = on_step or (lambda name: None)
    snapshot = _read_labelled(settings.offline_location)
    step(CREATE_STEPS[0])
    joined = join(snapshot.features, snapshot.labels)
    if joined.num_rows == 0:
        raise _no_labelled_rows(settings.offline_dir)
    step(CREATE_STEPS[1])
    parts = apply_split(joined, split, seed=seed, **spec)
    step(CREATE_STEPS[2])
    record = _record(view, snapshot, split, seed, spec, parts)
    number = _write(settings, record, parts, step)
    logger.info("dataset %d: %s", number, {k: v.rows for k, v in record.splits.items()})
    return number


def apply_split(
    table: pa.Table,
    kind: str,
    *,
    fractions: tuple[float, float, float] | None = None,
    seed: int = 42,
    gap: timedelta | None = None,
    ranges: Mapping[str, TimeRange] | None = None,
) -> Split:
    """Split ``table`` as a dataset record describes: by kind, fractions or ranges, gap, seed."""
    if ranges is not None:
        return time_range_split(table, ranges["train"], ranges["validation"], ranges["test"])
    assert fractions is not None
    if kind == "time":
        return time_split(table, fractions, gap)
    if kind == "random":
        return random_split(table, fractions, seed)
    if kind == "stratified":
        return stratified_split(table, fractions, seed)
    raise SplitError(f"split must be one of {', '.join(SPLIT_KINDS)}, got {kind!r}")


def read_dataset(settings: Settings, n: int) -> Split:
    """Dataset ``n``'s rows, rebuilt from the offline store at the recorded Lance versions."""
    record = load_dataset_record(datasets_dir(settings), n)
    if record.fractions is None and record.ranges is None:  # recorded by the training job
        training = TrainingSettings(
            window_labels=record.window_labels,
            validation_fraction=record.validation_fraction,
            test_fraction=record.test_fraction,
            seed=record.seed,
        )
        return build_dataset(settings.offline_location, training, record.table_versions).split
    snapshot = read_offline(settings.offline_location, record.table_versions)
    joined = feature_view(record.view)(snapshot.features, snapshot.labels)
    return apply_split(
        joined,
        record.split,
        fractions=record.fractions,
        seed=record.seed,
        gap=record.gap,
        ranges=record.ranges,
    )


def dataset_hash(settings: Settings, n: int) -> str:
    """sha256 of dataset ``n``'s re-read rows (all splits); equals its record's rows_sha256."""
    return rows_sha256(pa.concat_tables(read_dataset(settings, n).parts().values()))


def list_datasets(settings: Settings) -> dict[int, DatasetRecord]:
    """Every recorded dataset version by number, ascending (training-job records included)."""
    folder = datasets_dir(settings)
    return {n: load_dataset_record(folder, n) for n in dataset_versions(folder)}


def _split_spec(
    kind: str,
    fractions: tuple[float, float, float],
    gap: timedelta | None,
    ranges: Mapping[str, TimeRange] | None,
) -> dict[str, Any]:
    """Check the split arguments before any data is read; the keywords of ``apply_split``."""
    if kind not in SPLIT_KINDS:
        raise SplitError(f"split must be one of {', '.join(SPLIT_KINDS)}, got {kind!r}")
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


def _read_labelled(offline_dir: Path | str) -> OfflineSnapshot:
    """Both offline tables, latest versions pinned; TrainingDataError if nothing is labelled."""
    if "://" not in str(offline_dir) and not Path(offline_dir).is_dir():
        raise _no_labelled_rows(offline_dir)
    tables = LanceOfflineStore(offline_dir).table_names()
    if not {FEATURES_TABLE, LABELS_TABLE} <= set(tables):
        raise _no_labelled_rows(offline_dir)
    return read_offline(offline_dir)


def _no_labelled_rows(offline_dir: Path | str) -> TrainingDataError:
    return TrainingDataError(
        f"no labelled rows in {offline_dir}; run the feature flow / fti demo first"
    )


def _record(
    view: str, snapshot: OfflineSnapshot, kind: str, seed: int, spec: dict[str, Any], parts: Split
) -> DatasetRecord:
    tables = parts.parts()
    rows = sum(t.num_rows for t in tables.values())
    fractions = spec.get("fractions")
    if fractions is None:  # time ranges: record the fractions they produced
        fractions = tuple(t.num_rows / rows for t in tables.values())
    return DatasetRecord(
        view=view,
        table_versions=snapshot.table_versions,
        split=kind,
        validation_fraction=fractions[1],
        test_fraction=fractions[2],
        window_labels=0,
        seed=seed,
        rows=rows,
        rows_sha256=rows_sha256(pa.concat_tables(tables.values())),
        splits={name: split_stats(table) for name, table in tables.items()},
        fractions=spec.get("fractions"),
        gap=spec.get("gap"),
        ranges=spec.get("ranges"),
    )


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
        step(CREATE_STEPS[3])
        number = save_dataset_version(folder, record)
        target = folder / str(number)
        if target.exists():  # left behind by a record deleted by hand; keep it, out of the way
            aside = folder / f".orphan-{number}-{staging.name}"
            logger.warning("%s has no record; moving it to %s", target, aside)
            target.rename(aside)
        staging.rename(target)
        step(CREATE_STEPS[4])
        return number
    finally:
        shutil.rmtree(staging, ignore_errors=True)
