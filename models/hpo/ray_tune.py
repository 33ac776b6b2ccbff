"""The search of `fti.models.hpo.search` on Ray Tune: the same trials spread over a Ray cluster
(or a local Ray instance).

Same space, same objective (`fti.models.hpo.search.objective_for` on the same `SearchTarget`),
same sampler (Optuna TPE or random, through Tune's ``OptunaSearch``), same result. Pruning is
Tune's ASHA scheduler fed by the same per-round / per-epoch validation losses (``progress``);
the sampler learns from the final validation metric (``objective``) only, so a trial ASHA stops
counts as pruned for it too. Ray is the optional extra ``fti[ray]`` (``ray[tune]``), imported
only when `search_ray` runs; without it `search_ray` says what to install.

`search_ray` uses the Ray instance of the caller's ``ray.init()`` (e.g. ``num_cpus=2`` locally, or
``address=...`` for a cluster); Tune starts a local one on all CPUs when there is none.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Sequence
from typing import Any

import optuna

from fti.models.errors import SearchError
from fti.models.hpo.search import (
    Dimension,
    SamplerName,
    SearchResult,
    SearchTarget,
    TrialCallback,
    check_scorable,
    decode_params,
    make_sampler,
    objective_for,
    space_for,
)

#: Rounds/epochs before ASHA may stop a trial, and how many of each rung go on (1 in 3).
GRACE_STEPS, REDUCTION_FACTOR = 5, 3
#: Reported keys: the validation loss so far (in the target's direction; ASHA's), the final
#: validation metric (the sampler's; None until the trial ends) and the step reported.
PROGRESS, OBJECTIVE, STEP = "progress", "objective", "step"


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


def _trial(config: dict[str, Any], target: SearchTarget, space: Sequence[Dimension]) -> None:
    """One Tune trial: every step reports the validation loss; the last report adds the
    validation metric."""
    tune = ray_tune()
    last: dict[str, Any] = {PROGRESS: None, STEP: 0}

    def report(step: int, value: float) -> None:
        last.update({PROGRESS: value, STEP: step})
        tune.report({PROGRESS: value, OBJECTIVE: None, STEP: step})

    value = objective_for(target)(decode_params(space, config), report)
    progress = last[PROGRESS] if last[PROGRESS] is not None else value  # no step reported
    tune.report({PROGRESS: progress, OBJECTIVE: value, STEP: last[STEP]})


def _searcher(sampler: SamplerName, seed: int, mode: str) -> Any:
    """Tune's OptunaSearch learning from the final ``objective`` only (intermediate results
    are ASHA's): a trial that ends without one is told to Optuna as pruned."""
    from ray.tune.search.optuna import OptunaSearch

    class FinalValueSearch(OptunaSearch):  # type: ignore[misc]
        def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
            return None

    return FinalValueSearch(sampler=make_sampler(sampler, seed), metric=OBJECTIVE, mode=mode)


def search_ray(
    target: SearchTarget,
    n_trials: int = 20,
    timeout_s: float | None = None,
    seed: int = 0,
    sampler: SamplerName = "tpe",
    progress: TrialCallback | None = None,
    *,
    space: Sequence[Dimension] | None = None,
    max_concurrent: int | None = None,
    storage_path: str | None = None,
) -> SearchResult:
    """`search.search` on Ray Tune: ``n_trials`` trials (at most ``max_concurrent`` at once,
    default: as many as the Ray instance's CPUs allow, one CPU each) or ``timeout_s`` seconds.

    Trials stopped by ASHA count as pruned; ``progress`` is called for each trial at the end.
    Tune's own files go under ``storage_path`` (default: a temporary directory, removed).
    """
    tune = ray_tune()
    from ray.tune.schedulers import ASHAScheduler

    dims = tuple(space) if space is not None else space_for(target.kind, target.fixed)
    check_scorable(target)  # fail here, not in every trial
    mode = "max" if target.direction == "maximize" else "min"
    with tempfile.TemporaryDirectory(prefix="fti-ray-tune-") as scratch:
        tuner = tune.Tuner(
            tune.with_parameters(_trial, target=target, space=dims),
            param_space=tune_space(dims),
            tune_config=tune.TuneConfig(
                num_samples=n_trials,
                time_budget_s=timeout_s,
                max_concurrent_trials=max_concurrent,
                search_alg=_searcher(sampler, seed, mode),
                scheduler=ASHAScheduler(
                    metric=PROGRESS, mode=mode, grace_period=GRACE_STEPS,
                    reduction_factor=REDUCTION_FACTOR, max_t=100_000,
                ),
            ),
            run_config=tune.RunConfig(
                name=f"fti-{target.name}-{uuid.uuid4().hex[:8]}",
                storage_path=storage_path or scratch, verbose=0,
            ),
        )
        started, verbosity = time.monotonic(), optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            grid = tuner.fit()
        finally:
            optuna.logging.set_verbosity(verbosity)
        duration_s = round(time.monotonic() - started, 3)
    trials = []
    for number in range(len(grid)):
        found = grid[number]
        metrics = found.metrics or {}
        value = metrics.get(OBJECTIVE)
        state = "FAIL" if found.error else "PRUNED" if value is None else "COMPLETE"
        trials.append({
            "number": number, "params": decode_params(dims, found.config or {}),
            "value": None if value is None else float(value), "state": state,
            "steps": int(metrics.get(STEP, 0)),
        })
    for row in trials:
        if progress is not None:
            progress(row)
    complete = [row for row in trials if row["state"] == "COMPLETE"]
    if not complete:
        errors = [str(grid[n].error).splitlines()[-1] for n in range(len(grid)) if grid[n].error]
        raise SearchError(f"no Ray Tune trial of {target.name} completed ({len(trials)} ran)"
                          + (f"; first error: {errors[0]}" if errors else ""))
    pick = max if target.direction == "maximize" else min
    best = pick(complete, key=lambda row: row["value"])
    return SearchResult(
        best_params=best["params"],
        best_value=best["value"],
        trials=trials,
        pruned=sum(row["state"] == "PRUNED" for row in trials),
        duration_s=duration_s,
    )
