"""Hyperparameter search: a search space per trainer kind, Optuna TPE or random, early pruning.

`search` tunes one `ModelSpec` on one `Split`: each trial fits on ``split.train`` (early stopping
on ``split.validation``, exactly like the trainer) and scores the ROC AUC on ``split.validation``;
the test split is never read. Trials report a validation metric after every boosting round
(XGBoost: validation AUC) or epoch (MLP: negated validation log-loss, from the trainer's
``progress`` hook), so the pruner stops bad trials early. ``best_params`` are overrides of
``spec.hyperparameters`` (`apply_params`). `run_search_job` does the same on the offline store
and records the result under ``data_dir/hpo``; `search_ray` runs the same trials on Ray Tune.

>>> [d.name for d in space_for("mlp")]
['hidden_sizes', 'lr', 'weight_decay', 'dropout', 'batch_size']
>>> SPACES["mlp"][0].decode("64-32")
[64, 32]
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import optuna
import xgboost as xgb

from fti.errors import ConfigError
from fti.features.definitions import FEATURE_COLUMNS, LABEL_COLUMN
from fti.features.training_data import Split
from fti.models.devices import select_device, xgboost_device
from fti.models.errors import SearchError
from fti.models.evaluation.metrics import roc_auc
from fti.models.specs import ModelSpec
from fti.models.trainers.base import ModelInputs
from fti.models.trainers.xgboost_model import features_matrix, labels_vector, xgboost_params
from fti.settings import TrainingSettings

logger = logging.getLogger(__name__)

SamplerName = Literal["tpe", "random"]
#: Called with (step from 1, intermediate validation metric, higher is better); may raise to stop.
Report = Callable[[int, float], None]
#: Called after each finished trial with its row of `SearchResult.trials`.
TrialCallback = Callable[[dict[str, Any]], None]
#: Runs one trial: hyperparameter overrides and a reporter in, validation ROC AUC out.
Objective = Callable[[dict[str, Any], Report], float]
#: What every search maximizes: ROC AUC on the validation split.
_SETTINGS_KEYS = ("n_estimators", "max_depth", "learning_rate", "seed")
#: What the built-in fraud models (the only ones searched) read and predict.
_FRAUD = ModelInputs(FEATURE_COLUMNS, LABEL_COLUMN, "binary")


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
        """The hyperparameter value of a suggested one (sequences as lists, as specs hold them)."""
        for choice in self.choices:
            if _label(choice) == value:
                return list(choice) if isinstance(choice, tuple) else choice
        return value


def _label(choice: Any) -> Any:
    return "-".join(map(str, choice)) if isinstance(choice, tuple) else choice


#: The search space of each trainer kind.
SPACES: dict[str, tuple[Dimension, ...]] = {
    "xgboost": (
        Dimension("max_depth", 2, 10, integer=True),
        Dimension("learning_rate", 0.01, 0.3, log=True),
        Dimension("n_estimators", 50, 500, integer=True),
        Dimension("min_child_weight", 0.5, 20.0, log=True),
        Dimension("subsample", 0.5, 1.0),
        Dimension("colsample_bytree", 0.5, 1.0),
    ),
    "mlp": (
        Dimension("hidden_sizes", choices=((32,), (64, 32), (128, 64), (64, 64, 32))),
        Dimension("lr", 1e-4, 3e-2, log=True),
        Dimension("weight_decay", 1e-6, 1e-2, log=True),
        Dimension("dropout", 0.0, 0.5),
        Dimension("batch_size", choices=(64, 128, 256, 512)),
    ),
}


def space_for(kind: str) -> tuple[Dimension, ...]:
    """The search space of trainer ``kind``; ConfigError naming the kinds that have one."""
    if kind not in SPACES:
        raise ConfigError(f"no search space for trainer kind {kind!r}; known: {sorted(SPACES)}")
    return SPACES[kind]


def decode_params(space: Sequence[Dimension], raw: Mapping[str, Any]) -> dict[str, Any]:
    """Hyperparameter overrides from Optuna's raw trial params."""
    by_name = {d.name: d for d in space}
    return {k: by_name[k].decode(v) if k in by_name else v for k, v in raw.items()}


class _RoundReport(xgb.callback.TrainingCallback):
    """Reports the validation AUC after every boosting round."""

    def __init__(self, report: Report) -> None:
        self.report = report

    def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, Any]) -> bool:
        self.report(epoch + 1, float(evals_log["validation_0"]["auc"][-1]))
        return False


def xgboost_objective(spec: ModelSpec, split: Split, device: str) -> Objective:
    """Trials of ``spec`` as the XGBoost trainer fits it (same parameters, early stopping on
    validation log-loss, trees cut at the best round); keys other than the trainer's settings
    (``min_child_weight``, ``subsample``, ...) go straight to ``XGBClassifier``."""
    X, y = features_matrix(split.train, _FRAUD.features), labels_vector(split.train, _FRAUD.label)
    X_val = features_matrix(split.validation, _FRAUD.features)
    y_val = labels_vector(split.validation, _FRAUD.label)

    def objective(params: dict[str, Any], report: Report) -> float:
        hp = dict(spec.hyperparameters) | params
        settings = TrainingSettings(**{k: hp[k] for k in _SETTINGS_KEYS if k in hp})
        extra = {k: v for k, v in hp.items() if k not in _SETTINGS_KEYS}
        kwargs = xgboost_params(split, settings, xgboost_device(device), _FRAUD) | extra
        kwargs["eval_metric"] = ["auc", "logloss"]  # the last one drives early stopping
        classifier = xgb.XGBClassifier(**kwargs, callbacks=[_RoundReport(report)])
        classifier.fit(X, y, eval_set=[(X_val, y_val)], verbose=False)
        booster = classifier.get_booster()[: classifier.best_iteration + 1]
        return roc_auc(y_val, np.asarray(booster.inplace_predict(X_val)))

    return objective


def mlp_objective(spec: ModelSpec, split: Split, device: str) -> Objective:
    """Trials of ``spec`` fitted by `MLPTrainer` in a temporary directory; the trainer's
    per-epoch ``progress`` hook reports the negated validation loss."""
    from fti.models.trainers import trainer_for  # imports torch only when an MLP is searched

    X_val = features_matrix(split.validation, _FRAUD.features)
    y_val = labels_vector(split.validation, _FRAUD.label)

    def objective(params: dict[str, Any], report: Report) -> float:
        trainer = trainer_for("mlp", _FRAUD, dict(spec.hyperparameters) | params)
        with tempfile.TemporaryDirectory(prefix="fti-hpo-") as workdir:
            trainer.fit(split, _FRAUD, device, Path(workdir),
                        lambda n, loss: report(n, -loss["val_loss"]))
            scores = trainer.load(Path(workdir)).predict(X_val)
        return roc_auc(y_val, np.asarray(scores, dtype=np.float64))

    return objective


_OBJECTIVES = {"xgboost": xgboost_objective, "mlp": mlp_objective}


def objective_for(spec: ModelSpec, split: Split) -> Objective:
    """The trial function of ``spec`` on ``split`` (SearchError if validation has one class)."""
    space_for(spec.kind)
    y_val = labels_vector(split.validation, _FRAUD.label)
    if len(np.unique(y_val)) < 2:
        raise SearchError(
            f"the validation split ({len(y_val)} rows) needs both classes to score ROC AUC; "
            "use more labels or a larger validation fraction"
        )
    return _OBJECTIVES[spec.kind](spec, split, select_device(spec.device))


@dataclass(frozen=True)
class SearchResult:
    """The best overrides of ``spec.hyperparameters``, their validation ROC AUC, every trial
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
    spec: ModelSpec,
    split: Split,
    n_trials: int = 20,
    timeout_s: float | None = None,
    seed: int = 0,
    sampler: SamplerName = "tpe",
    progress: TrialCallback | None = None,
    *,
    pruner: str | optuna.pruners.BasePruner = "median",
    space: Sequence[Dimension] | None = None,
) -> SearchResult:
    """Tune ``spec`` on ``split`` for ``n_trials`` trials or ``timeout_s`` seconds, whichever
    ends first; one trial at a time, so a seed gives the same trials every run."""
    dims = tuple(space or space_for(spec.kind))
    objective = objective_for(spec, split)

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
            direction="maximize", sampler=make_sampler(sampler, seed), pruner=make_pruner(pruner)
        )
        study.optimize(run, n_trials=n_trials, timeout=timeout_s, n_jobs=1, callbacks=[finished])
    finally:
        optuna.logging.set_verbosity(verbosity)
    trials = [_row(t, dims) for t in study.trials]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise SearchError(
            f"no trial of {spec.name} completed ({len(trials)} ran, all pruned or failed); "
            "raise n_trials or timeout_s, or use a gentler pruner"
        )
    return SearchResult(
        best_params=decode_params(dims, study.best_trial.params),
        best_value=float(study.best_value),
        trials=trials,
        pruned=sum(t["state"] == "PRUNED" for t in trials),
        duration_s=round(time.monotonic() - started, 3),
    )
