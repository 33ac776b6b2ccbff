"""The search of `fti.models.hpo.search` on Ray Tune, for searches spread over a cluster.

Same space, same trials (`fti.models.hpo.search.objective_for`), same sampler (Optuna TPE or random,
through Tune's ``OptunaSearch``), same result; pruning is Tune's ASHA scheduler fed by the same
per-round / per-epoch reports. Ray is the optional extra ``fti[ray]`` (``ray[tune]``) and is
imported only when `search_ray` runs; without it `search_ray` says what to install.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from fti.features.training_data import Split
from fti.models.errors import SearchError
from fti.models.hpo.records import METRIC
from fti.models.hpo.search import (
    Dimension,
    SamplerName,
    SearchResult,
    TrialCallback,
    decode_params,
    make_sampler,
    objective_for,
    space_for,
)
from fti.models.specs import ModelSpec

#: Rounds/epochs before ASHA may stop a trial, and how many of each rung go on (1 in 3).
GRACE_STEPS, REDUCTION_FACTOR = 5, 3


def ray_tune() -> Any:
    """The ``ray.tune`` module; SearchError naming the extra to install when Ray is missing."""
    try:
        from ray import tune
    except ImportError as ex:
        raise SearchError(
            "search_ray needs Ray Tune, which is not installed: pip install 'fti[ray]' "
            "(installs ray[tune]); `fti tune` runs the same search in process without it"
        ) from ex
    return tune


def tune_space(space: Sequence[Dimension]) -> dict[str, Any]:
    """The search space as Ray Tune sampling domains (choices as their labels)."""
    tune = ray_tune()
    domains: dict[str, Any] = {}
    for d in space:
        if d.choices:
            domains[d.name] = tune.choice(d.labels)
        elif d.integer:  # Tune's integer upper bounds are exclusive
            sample = tune.lograndint if d.log else tune.randint
            domains[d.name] = sample(int(d.low), int(d.high) + 1)
        else:
            domains[d.name] = (tune.loguniform if d.log else tune.uniform)(d.low, d.high)
    return domains


def _trial(config: dict[str, Any], spec: ModelSpec, split: Split) -> None:
    """One Tune trial: every step reports ``score``; the last report also holds the metric."""
    tune = ray_tune()
    space = space_for(spec.kind)
    objective = objective_for(spec, split)
    value = objective(
        decode_params(space, config), lambda step, v: tune.report({"score": v, "step": step})
    )
    tune.report({"score": value, METRIC: value})


def search_ray(
    spec: ModelSpec,
    split: Split,
    n_trials: int = 20,
    timeout_s: float | None = None,
    seed: int = 0,
    sampler: SamplerName = "tpe",
    progress: TrialCallback | None = None,
) -> SearchResult:
    """`search.search` on Ray Tune (``ray.init()`` settings apply: local or a cluster).

    Trials stopped by ASHA count as pruned; ``progress`` is called for each trial at the end.
    """
    tune = ray_tune()
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    space = space_for(spec.kind)
    objective_for(spec, split)  # fail here, not in every trial, on a split that cannot score
    tuner = tune.Tuner(
        tune.with_parameters(_trial, spec=spec, split=split),
        param_space=tune_space(space),
        tune_config=tune.TuneConfig(
            metric="score",
            mode="max",
            num_samples=n_trials,
            time_budget_s=timeout_s,
            search_alg=OptunaSearch(sampler=make_sampler(sampler, seed)),
            scheduler=ASHAScheduler(
                grace_period=GRACE_STEPS, reduction_factor=REDUCTION_FACTOR, max_t=100_000
            ),
        ),
    )
    started = time.monotonic()
    grid = tuner.fit()
    duration_s = round(time.monotonic() - started, 3)
    trials = []
    for number in range(len(grid)):
        found = grid[number]
        metrics = found.metrics or {}
        done = METRIC in metrics
        state = "FAIL" if found.error else "COMPLETE" if done else "PRUNED"
        value = float(metrics[METRIC]) if done else None
        trials.append(
            {"number": number, "params": decode_params(space, found.config or {}),
             "value": value, "state": state, "steps": int(metrics.get("training_iteration", 0))}
        )
    for row in trials:
        if progress is not None:
            progress(row)
    complete = [row for row in trials if row["state"] == "COMPLETE"]
    if not complete:
        raise SearchError(f"no Ray Tune trial of {spec.name} completed ({len(trials)} ran)")
    best = max(complete, key=lambda row: row["value"])
    return SearchResult(
        best_params=best["params"],
        best_value=best["value"],
        trials=trials,
        pruned=sum(row["state"] == "PRUNED" for row in trials),
        duration_s=duration_s,
    )
