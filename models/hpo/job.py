"""Search jobs: tune a declared model on its view's dataset; record the result under
``data_dir/hpo``.

`run_search_job` builds the model's dataset exactly like its training job
(`build_model_dataset` with ``settings.training``), searches it in process (`search.search`,
Optuna) or on Ray Tune (`ray_tune.search_ray`) and writes one JSON record per run,
``data_dir/hpo/<model>-<UTC timestamp>.json``: the best parameters, every trial, the metric and
its direction, the sampler and seed, and the dataset record (table versions, split sizes and
row hashes), so a search can be rerun on identical rows. ``fti train --project DIR --model NAME
--params-from latest`` reads the newest record back (`records.best_params_from`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import optuna
from tqdm import tqdm

from fti.errors import ConfigError
from fti.features.project.datasets import build_model_dataset, check_trainable
from fti.models.devices import select_device
from fti.models.hpo.records import SearchRecord, search_record_path, write_search_record
from fti.models.hpo.search import (
    Dimension,
    SamplerName,
    SearchResult,
    SearchTarget,
    search,
    space_for,
    target_of,
)
from fti.models.jobs.model_job import model_inputs, model_of
from fti.settings import Settings

if TYPE_CHECKING:
    from fti.features.project.loader import Project

Backend = Literal["optuna", "ray"]


def run_search_job(
    settings: Settings,
    project: Project,
    name: str | None = None,
    n_trials: int = 30,
    timeout_s: float | None = None,
    seed: int | None = None,
    sampler: SamplerName = "tpe",
    progress: bool = False,
    fixed_params: Mapping[str, Any] | None = None,
    backend: Backend = "optuna",
    *,
    space: Sequence[Dimension] | None = None,
    pruner: str | optuna.pruners.BasePruner = "median",
) -> SearchRecord:
    """Search the hyperparameters of the project's model ``name`` (the only one when None) on
    its view's dataset; write and return the record.

    Each trial trains the model's trainer with its declared ``params``, then ``fixed_params``
    (pinned for every trial, recorded, left out of the space), then the trial's values, and
    scores the task's primary metric on the validation split (maximized, or minimized for
    ``mae``-like metrics). ``seed`` (default ``settings.training.seed``) seeds the sampler; the
    model's own seed stays as declared, so trials differ only in their hyperparameters. The test
    split is not read. ``backend="ray"`` runs the trials on Ray Tune (the ``ray`` extra).
    """
    model = model_of(project, name)
    fixed = dict(fixed_params or {})
    if backend not in ("optuna", "ray"):
        raise ConfigError(f"search backend must be 'optuna' or 'ray', got {backend!r}")
    dims = tuple(space) if space is not None else space_for(model.trainer, fixed)  # before data
    created_at = datetime.now(UTC)
    dataset = build_model_dataset(model, settings.offline_location, settings.training)
    check_trainable(model, dataset)
    target = target_of(model, dataset.split, model_inputs(model, dataset),
                       select_device(model.device), fixed)
    seed = settings.training.seed if seed is None else seed
    result = _run(target, backend, n_trials, timeout_s, seed, sampler, progress, dims, pruner)
    record = SearchRecord(
        model=model.name, kind=target.kind_name, task=model.task, view=model.view.name,
        created_at=created_at, metric=f"validation_{target.metric}", direction=target.direction,
        backend=backend, sampler=sampler, seed=seed, n_trials=n_trials, timeout_s=timeout_s,
        fixed_params=fixed, best_params=result.best_params, best_value=result.best_value,
        trials=result.trials, pruned=result.pruned, duration_s=result.duration_s,
        dataset=dataset.record,
    )
    write_search_record(search_record_path(settings.data_dir, model.name, created_at), record)
    return record


def _run(target: SearchTarget, backend: Backend, n_trials: int, timeout_s: float | None, seed: int,
         sampler: SamplerName, progress: bool, dims: tuple[Dimension, ...],
         pruner: str | optuna.pruners.BasePruner) -> SearchResult:
    bar = tqdm(total=n_trials, desc=f"tuning {target.name}", unit="trial") if progress else None
    tick = (lambda _: bar.update(1)) if bar is not None else None
    try:
        if backend == "ray":
            from fti.models.hpo.ray_tune import search_ray

            return search_ray(target, n_trials, timeout_s, seed, sampler, tick, space=dims)
        return search(target, n_trials, timeout_s, seed, sampler, tick, pruner=pruner,
                      space=dims)
    finally:
        if bar is not None:
            bar.close()
