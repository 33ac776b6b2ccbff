"""Search jobs: tune a model on the offline store and record the result under ``data_dir/hpo``.

`run_search_job` builds the dataset exactly like the training job (`build_dataset` with
``settings.training``), runs `search.search` on it and writes one JSON record per run,
``data_dir/hpo/<model>-<UTC timestamp>.json``: the best parameters, every trial, the sampler and
seed, and the dataset record (Lance table versions, split sizes and row hashes), so a search can
be rerun on identical rows. `best_params_from` reads a record back for the training job.

"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tqdm import tqdm

from fti.features.training_data import VIEW_NAME, build_dataset, check_trainable
from fti.models.errors import JobError
from fti.models.hpo.records import SearchRecord, search_record_path, write_search_record
from fti.models.hpo.search import SamplerName, search
from fti.models.specs import apply_params, spec_for
from fti.settings import Settings


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
    fixed = dict(fixed_params or {})
    spec = apply_params(spec_for(model, settings), fixed)
    if spec.view != VIEW_NAME:
        raise JobError(
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
    write_search_record(search_record_path(settings.data_dir, model, created_at), record)
    return record


