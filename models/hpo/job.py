"""Search jobs: tune a model on the offline store and record the result under ``data_dir/hpo``.

`run_search_job` builds the dataset exactly like the training job (`build_dataset` with
``settings.training``), runs `search.search` on it and writes one JSON record per run,
``data_dir/hpo/<model>-<UTC timestamp>.json``: the best parameters, every trial, the sampler and
seed, and the dataset record (Lance table versions, split sizes and row hashes), so a search can
be rerun on identical rows. `best_params_from` reads a record back for the training job.

>>> search_record_path(Path("/d"), "fraud-xgb", datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC))
PosixPath('/d/hpo/fraud-xgb-20260102T030405000006Z.json')
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from tqdm import tqdm

from fti.errors import FtiError
from fti.features.training_data import VIEW_NAME, DatasetRecord, build_dataset
from fti.models.hpo.search import METRIC, SamplerName, apply_params, search
from fti.models.jobs.specs import spec_for
from fti.settings import Settings

#: Folder of ``data_dir`` holding search records.
HPO_DIR = "hpo"


class SearchRecord(BaseModel):
    """One search run as recorded on disk; ``best_params`` override the spec's hyperparameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    kind: str
    created_at: datetime
    metric: str = METRIC
    sampler: str
    seed: int
    n_trials: int
    timeout_s: float | None
    fixed_params: dict[str, Any] = {}
    best_params: dict[str, Any]
    best_value: float
    trials: list[dict[str, Any]]
    pruned: int
    duration_s: float
    dataset: DatasetRecord


def search_record_path(data_dir: Path, model: str, created_at: datetime) -> Path:
    """Where the record of a search of ``model`` started at ``created_at`` is written."""
    stamp = created_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return Path(data_dir) / HPO_DIR / f"{model}-{stamp}.json"


def run_search_job(
    settings: Settings,
    model: str,
    n_trials: int = 30,
    timeout_s: float | None = None,
    seed: int | None = None,
    sampler: SamplerName = "tpe",
    progress: bool = False,
    fixed_params: Mapping[str, Any] | None = None,
) -> SearchRecord:
    """Search ``model``'s hyperparameters on the offline store; write and return the record.

    ``seed`` (default ``settings.training.seed``) seeds the sampler; the model's own seed stays
    the spec's, so trials differ only in their hyperparameters. ``fixed_params`` override the
    spec for every trial (e.g. ``{"epochs": 10}``) and are recorded. The test split is not used.
    """
    from fti.models.jobs.training_job import check_trainable  # the training job's refusal rules

    fixed = dict(fixed_params or {})
    spec = apply_params(spec_for(model, settings), fixed)
    if spec.view != VIEW_NAME:
        raise FtiError(
            f"model {model!r} reads feature view {spec.view!r}; search jobs build datasets of "
            f"view {VIEW_NAME!r} only"
        )
    created_at = datetime.now(UTC)
    dataset = build_dataset(settings.offline_dir, settings.training)
    check_trainable(dataset)
    seed = settings.training.seed if seed is None else seed
    bar = tqdm(total=n_trials, desc=f"tuning {model}", unit="trial") if progress else None
    try:
        result = search(
            spec, dataset.split, n_trials, timeout_s, seed, sampler,
            progress=(lambda _: bar.update(1)) if bar is not None else None,
        )
    finally:
        if bar is not None:
            bar.close()
    record = SearchRecord(
        model=model, kind=spec.kind, created_at=created_at, sampler=sampler, seed=seed,
        n_trials=n_trials, timeout_s=timeout_s, fixed_params=fixed, best_params=result.best_params,
        best_value=result.best_value, trials=result.trials, pruned=result.pruned,
        duration_s=result.duration_s, dataset=dataset.record,
    )
    _write(search_record_path(settings.data_dir, model, created_at), record)
    return record


def _write(path: Path, record: SearchRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(record.model_dump_json(indent=2))
    os.replace(temp, path)  # readers never see half a record


def search_records(data_dir: Path, model: str) -> list[Path]:
    """The record files of ``model`` under ``data_dir/hpo``, oldest first."""
    folder = Path(data_dir) / HPO_DIR
    stamps = sorted(folder.glob(f"{model}-*.json")) if folder.is_dir() else []
    return [p for p in stamps if p.stem[len(model) + 1 :][:8].isdigit()]


def load_search_record(path: Path) -> SearchRecord:
    """Read one search record."""
    path = Path(path)
    if not path.is_file():
        raise FtiError(f"search record {path} not found")
    return SearchRecord.model_validate_json(path.read_text())


def best_params_from(data_dir: Path, model: str, ref: str = "latest") -> dict[str, Any]:
    """The overrides a search found for ``model`` (its fixed parameters and best ones), from its
    newest record (``ref="latest"``) or the record file ``ref`` (a path, or a file name in
    ``data_dir/hpo``)."""
    if ref == "latest":
        found = search_records(data_dir, model)
        if not found:
            raise FtiError(
                f"no search record of {model} in {Path(data_dir) / HPO_DIR}; run "
                f"`fti tune --model {model}` first, or train without --params-from"
            )
        path = found[-1]
    else:
        path = Path(ref) if Path(ref).is_file() else Path(data_dir) / HPO_DIR / ref
    record = load_search_record(path)
    if record.model != model:
        raise FtiError(f"search record {path} is of model {record.model!r}, not {model!r}")
    return record.fixed_params | record.best_params
