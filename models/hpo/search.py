"""Hyperparameter search of a declared model: a space per trainer kind, Optuna TPE or random
sampling, early pruning.

A `SearchTarget` is what every trial fits and scores: a model's trainer kind, its inputs, the
split of its view's dataset, its declared parameters, and the task's primary metric with the
direction it is better in (`target_of` builds one from a `Model`). Each trial builds the
model's trainer with the declared parameters overridden by the trial's, fits it through the
trainer contract exactly as ``fti train`` does (early stopping on ``split.validation``), loads
the artifacts it wrote and scores the primary metric (``mae``, ``roc_auc``, ``macro_f1``) on
``split.validation``; the test split is never read.

Pruning: a trial reports its validation loss per boosting round (XGBoost, live, through a
training callback) or per epoch (MLP and any trainer calling its ``progress`` hook), negated
when the metric is maximized, and Optuna's pruner stops the trials that fall behind. The result
`SearchResult.best_params` are overrides of the model's ``params`` (`fti.models.hpo.records`).
`fti.models.hpo.ray_tune.search_ray` runs the same trials on Ray Tune.

>>> [d.name for d in space_for("mlp")]
['hidden_sizes', 'lr', 'weight_decay', 'dropout', 'batch_size', 'epochs']
>>> [d.name for d in space_for("mlp", fixed={"epochs": 3, "dropout": 0.0})][-1]
'batch_size'
>>> SPACES["mlp"][0].decode("64-32")
[64, 32]
>>> direction_of("mae"), direction_of("roc_auc")
('minimize', 'maximize')
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import optuna
import xgboost as xgb

from fti.errors import ConfigError
from fti.features.dataset_records import Split
from fti.features.project.model import Model
from fti.models.errors import SearchError
from fti.models.evaluation.metrics import evaluate
from fti.models.trainers import ModelInputs, load_artifacts, table_inputs, trainer_for
from fti.models.trainers.base import kind_of

logger = logging.getLogger(__name__)

SamplerName = Literal["tpe", "random"]
Direction = Literal["maximize", "minimize"]
#: Called with (step from 1, intermediate value in the study's direction); may raise to stop.
Report = Callable[[int, float], None]
#: Called after each finished trial with its row of `SearchResult.trials`.
TrialCallback = Callable[[dict[str, Any]], None]
#: Runs one trial: hyperparameter overrides and a reporter in, validation metric out.
Objective = Callable[[dict[str, Any], Report], float]


@dataclass(frozen=True)
class Dimension:
    """One hyperparameter's range: [low, high] (``log``-uniform, ``integer``), or ``choices``.

    >>> Dimension("batch_size", choices=(64, 128)).decode(128)
    128
    """

    name: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def labels(self) -> list[Any]:
        """The choices as values Optuna and Ray accept: sequences become labels like "64-32"."""
        return [_label(c) for c in self.choices]

    def suggest(self, trial: optuna.Trial) -> Any:
        """Ask Optuna for a value (a label, for choices; see `decode`)."""
        if self.choices:
            return trial.suggest_categorical(self.name, self.labels)
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def decode(self, value: Any) -> Any:
        """The hyperparameter value of a suggested one (sequences as lists, as params hold them)."""
        for choice in self.choices:
            if _label(choice) == value:
                return list(choice) if isinstance(choice, tuple) else choice
        if self.integer and not self.choices:
            return int(value)
        return value


def _label(choice: Any) -> Any:
    return "-".join(map(str, choice)) if isinstance(choice, tuple) else choice


#: The search space of each built-in trainer kind that is searched.
SPACES: dict[str, tuple[Dimension, ...]] = {
    "xgboost": (
        Dimension("n_estimators", 50, 400, integer=True),
        Dimension("max_depth", 2, 10, integer=True),
        Dimension("learning_rate", 0.01, 0.3, log=True),
        Dimension("min_child_weight", 0.5, 20.0, log=True),
        Dimension("subsample", 0.5, 1.0),
        Dimension("colsample_bytree", 0.5, 1.0),
        Dimension("reg_lambda", 1e-3, 10.0, log=True),
    ),
    "mlp": (
        Dimension("hidden_sizes", choices=((32,), (64, 32), (128, 64), (64, 64, 32))),
        Dimension("lr", 1e-4, 3e-2, log=True),
        Dimension("weight_decay", 1e-6, 1e-2, log=True),
        Dimension("dropout", 0.0, 0.5),
        Dimension("batch_size", choices=(64, 128, 256, 512)),
        Dimension("epochs", 10, 60, integer=True),
    ),
    # Each LoRA trial fine-tunes a transformer: minutes on a CPU. Few, short trials pay;
    # fix what you know with --fix (steps, say) to search the rest.
    "lora": (
        Dimension("lr", 3e-4, 1e-2, log=True),
        Dimension("rank", choices=(4, 8, 16)),
        Dimension("steps", 20, 120, integer=True),
    ),
}
#: Built-in kinds that are not searched, and why (every built-in kind is, now).
NOT_SEARCHED: dict[str, str] = {}


def space_for(kind: str | type, fixed: Mapping[str, Any] | None = None) -> tuple[Dimension, ...]:
    """The search space of trainer ``kind`` without the hyperparameters ``fixed`` pins.

    A built-in kind has `SPACES`; a user's trainer class declares its own as a class attribute
    ``search_space`` (a sequence of `Dimension`). ConfigError otherwise, naming why.
    """
    if isinstance(kind, str) and kind in NOT_SEARCHED:
        raise ConfigError(f"trainer kind {kind!r} is not searched: {NOT_SEARCHED[kind]}")
    if isinstance(kind, str) and kind in SPACES:
        dims = SPACES[kind]
    else:
        declared = getattr(kind, "search_space", None) if isinstance(kind, type) else None
        if not declared:
            name = kind if isinstance(kind, str) else kind_of(kind)
            raise ConfigError(
                f"no search space for trainer {name!r}; built-in spaces: {sorted(SPACES)}. A "
                "trainer class declares its own as `search_space = (Dimension(...), ...)` "
                "(fti.models.hpo.search.Dimension)"
            )
        dims = tuple(declared)
        wrong = [d for d in dims if not isinstance(d, Dimension)]
        if wrong:
            raise ConfigError(f"{kind_of(kind)}.search_space holds {wrong[0]!r}, not a Dimension")
    dims = tuple(d for d in dims if d.name not in (fixed or {}))
    if not dims:
        raise ConfigError(f"every hyperparameter of {kind!r} is fixed: nothing to search")
    return dims


def decode_params(space: Sequence[Dimension], raw: Mapping[str, Any]) -> dict[str, Any]:
    """Hyperparameter overrides from raw trial params (Optuna's or Ray Tune's config)."""
    by_name = {d.name: d for d in space}
    return {k: by_name[k].decode(v) if k in by_name else v for k, v in raw.items()}


def direction_of(metric: str) -> Direction:
    """Where ``metric`` is better: ``minimize`` for the ones whose gate is a maximum."""
    return "minimize" if Model.gate_direction(metric) == "max" else "maximize"


@dataclass(frozen=True)
class SearchTarget:
    """What every trial fits and scores (plain data, so Ray can ship it to its workers).

    ``params`` are the model's declared hyperparameters with ``fixed`` applied; a trial's
    overrides go on top. ``metric`` is a metric of ``inputs.task`` scored on the validation
    split, better in ``direction``.
    """

    name: str
    kind: str | type
    inputs: ModelInputs
    split: Split
    params: Mapping[str, Any] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    threshold: float = 0.5
    metric: str = "roc_auc"
    direction: Direction = "maximize"

    @property
    def task(self) -> str:
        """The task of the model searched."""
        return self.inputs.task

    @property
    def kind_name(self) -> str:
        """The trainer kind as recorded: built-in kind or ``module:Class``."""
        return self.kind if isinstance(self.kind, str) else kind_of(self.kind)


def target_of(model: Model, split: Split, inputs: ModelInputs, device: str,
              fixed: Mapping[str, Any] | None = None) -> SearchTarget:
    """The search target of a declared model on ``split`` (its dataset's time split)."""
    fixed = dict(fixed or {})
    metric = model.primary_metric()
    return SearchTarget(
        name=model.name, kind=model.trainer, inputs=inputs, split=split,
        params=dict(model.params) | fixed, fixed=fixed, device=device,
        threshold=model.threshold, metric=metric, direction=direction_of(metric),
    )


class _RoundReport(xgb.callback.TrainingCallback):
    """Reports the validation loss (the last eval set's, which drives early stopping) after
    every boosting round, while XGBoost trains."""

    def __init__(self, report: Callable[[int, float], None]) -> None:
        self.report = report

    def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, Any]) -> bool:
        if evals_log:
            validation = list(evals_log.values())[-1]
            self.report(epoch + 1, float(list(validation.values())[-1][-1]))
        return False


def _report_live_rounds(trainer: Any, task: str, report: Callable[[int, float], None]) -> bool:
    """Give a built-in XGBoost trainer a round callback (binary and regression, fitted by the
    sklearn estimator, which takes ``callbacks``); True when it took it. Otherwise the trainer's
    ``progress`` hook reports, which XGBoost calls only after the last round."""
    from fti.models.trainers.xgboost import XGBoostTrainer

    booster = getattr(trainer, "booster", None)
    if type(trainer) is not XGBoostTrainer or task == "multiclass" or not isinstance(
            booster, dict):
        return False
    trainer.booster = booster | {"callbacks": [_RoundReport(report)]}
    return True


def _validation_loss(losses: Mapping[str, float]) -> float | None:
    for name, value in losses.items():
        if name.startswith("val"):
            return float(value)
    return None


def check_scorable(target: SearchTarget) -> None:
    """SearchError when the validation split cannot score ``target.metric``."""
    rows = target.split.validation.num_rows
    if rows == 0:
        raise SearchError(f"{target.name}: the validation split is empty; a search scores "
                          "trials on it (raise training.validation_fraction)")
    if target.task == "binary":
        classes = np.unique(target.inputs.target(target.split.validation))
        if len(classes) < 2:
            raise SearchError(
                f"{target.name}: the validation split ({rows} rows) holds one class only; "
                f"{target.metric} needs both: use more labels or a larger validation fraction"
            )


def objective_for(target: SearchTarget) -> Objective:
    """The trial function of ``target``: fit with the trial's overrides, report validation
    losses, return ``target.metric`` on the validation split."""
    check_scorable(target)
    X_val = table_inputs(target.split.validation, target.inputs.features)
    y_val = target.inputs.target(target.split.validation)
    sign = 1.0 if target.direction == "minimize" else -1.0  # losses are better when lower

    def objective(params: dict[str, Any], report: Report) -> float:
        def loss(step: int, value: float) -> None:
            report(step, sign * value)

        def epoch(step: int, losses: dict[str, float]) -> None:
            value = _validation_loss(losses)
            if value is not None and math.isfinite(value):
                loss(step, value)

        trainer = trainer_for(target.kind, target.inputs, dict(target.params) | params)
        live = _report_live_rounds(trainer, target.task, loss)
        with tempfile.TemporaryDirectory(prefix="fti-hpo-") as workdir:
            trainer.fit(target.split, target.inputs, target.device, Path(workdir),
                        None if live else epoch)
            scores = load_artifacts(Path(workdir), target.kind).predict(X_val)
        metrics = evaluate(target.task, y_val, scores, target.threshold, target.inputs.classes)
        value = metrics.get(target.metric)
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise SearchError(f"{target.name}: {target.metric} on the validation split is "
                              f"{value!r} for {params}")
        return float(value)

    return objective


@dataclass(frozen=True)
class SearchResult:
    """The best overrides of the model's params, their validation metric, every trial
    (``number``, ``params``, ``value``: None unless complete, ``state``, ``steps`` reported),
    how many were pruned, and the wall time."""

    best_params: dict[str, Any]
    best_value: float
    trials: list[dict[str, Any]]
    pruned: int
    duration_s: float


def make_sampler(name: SamplerName, seed: int) -> optuna.samplers.BaseSampler:
    """A seeded TPE or random sampler."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"sampler must be 'tpe' or 'random', got {name!r}")


def make_pruner(pruner: str | optuna.pruners.BasePruner) -> optuna.pruners.BasePruner:
    """``"median"`` (after 5 trials and 5 steps), ``"halving"``, ``"none"`` or a pruner."""
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    pruners = {
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=5),
        "halving": optuna.pruners.SuccessiveHalvingPruner,
        "none": optuna.pruners.NopPruner,
    }
    if pruner not in pruners:
        raise ConfigError(f"pruner must be one of {sorted(pruners)} or an Optuna pruner")
    return pruners[pruner]()


def _row(trial: optuna.trial.FrozenTrial, space: Sequence[Dimension]) -> dict[str, Any]:
    complete = trial.state == optuna.trial.TrialState.COMPLETE
    return {
        "number": trial.number,
        "params": decode_params(space, trial.params),
        "value": trial.value if complete else None,  # Optuna keeps a pruned trial's last report
        "state": trial.state.name,
        "steps": len(trial.intermediate_values),
    }


def search(
    target: SearchTarget,
    n_trials: int = 20,
    timeout_s: float | None = None,
    seed: int = 0,
    sampler: SamplerName = "tpe",
    progress: TrialCallback | None = None,
    *,
    pruner: str | optuna.pruners.BasePruner = "median",
    space: Sequence[Dimension] | None = None,
) -> SearchResult:
    """Tune ``target`` for ``n_trials`` trials or ``timeout_s`` seconds, whichever ends first;
    one trial at a time, so a seed gives the same trials every run. ``space`` defaults to the
    kind's (`space_for`) without the target's fixed hyperparameters."""
    dims = tuple(space) if space is not None else space_for(target.kind, target.fixed)
    objective = objective_for(target)
    sampler_ = make_sampler(sampler, seed)

    def run(trial: optuna.Trial) -> float:
        def report(step: int, value: float) -> None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"trial {trial.number} pruned at step {step}")

        return objective(decode_params(dims, {d.name: d.suggest(trial) for d in dims}), report)

    def finished(_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        row = _row(trial, dims)
        logger.info("trial %d %s: %s %s", row["number"], row["state"], row["value"], row["params"])
        if progress is not None:
            progress(row)

    started, verbosity = time.monotonic(), optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # we log one line per trial ourselves
    try:
        study = optuna.create_study(
            direction=target.direction, sampler=sampler_, pruner=make_pruner(pruner)
        )
        study.optimize(run, n_trials=n_trials, timeout=timeout_s, n_jobs=1, callbacks=[finished])
    finally:
        optuna.logging.set_verbosity(verbosity)
    trials = [_row(t, dims) for t in study.trials]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise SearchError(
            f"no trial of {target.name} completed ({len(trials)} ran, all pruned or failed); "
            "raise the trials or the timeout, or use a gentler pruner"
        )
    return SearchResult(
        best_params=decode_params(dims, study.best_trial.params),
        best_value=float(study.best_value),
        trials=trials,
        pruned=sum(t["state"] == "PRUNED" for t in trials),
        duration_s=round(time.monotonic() - started, 3),
    )
