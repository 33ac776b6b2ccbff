"""The XGBoost trainer behind the `Trainer` contract, built on `fti.models.trainers.xgboost_model`.

Binary and regression models train exactly what `xgboost_model.train_xgboost` trains (same
parameters, early stopping on the validation split, trees cut at the best round); multiclass
models (``multi:softprob``, class values as indices 0..k-1 in ``inputs.classes`` order) train
through XGBoost's native API, which accepts a class that has no train rows. The per-round loss
on the train and validation splits is kept as the history.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from fti.errors import ConfigError
from fti.features.dataset_records import Split
from fti.models.devices import xgboost_device
from fti.models.errors import TrainerError
from fti.models.trainers.base import (
    SIGNATURE_FILE,
    ArtifactSignature,
    EpochCallback,
    FitResult,
    ModelInputs,
    artifact_dir,
    check_matrix,
    read_signature,
    write_signature,
)
from fti.models.trainers.xgboost_model import (
    EARLY_STOPPING_ROUNDS,
    MODEL_FILE,
    OBJECTIVES,
    estimator,
    features_matrix,
    load_model,
    predict_scores,
    save_model,
    target_vector,
    xgboost_params,
)
from fti.settings import TrainingSettings


@dataclass(frozen=True)
class LoadedXGBoost:
    """A booster loaded from UBJ with its signature; scores through `predict_scores`."""

    booster: xgb.Booster
    signature: ArtifactSignature | None = None

    def predict(self, X: np.ndarray) -> np.ndarray:
        """P(positive) (binary), class probabilities (multiclass) or values (regression) for
        rows of ``X`` in signature order."""
        if self.signature is not None:
            X = check_matrix(X, self.signature.features)
        return predict_scores(self.booster, X)


#: Booster parameters a model spec (or `fti tune`) may set beyond the training settings.
TUNABLE = frozenset({
    "min_child_weight", "subsample", "colsample_bytree", "gamma", "reg_alpha", "reg_lambda",
    "n_jobs",
})


class XGBoostTrainer:
    """Gradient-boosted trees; hyperparameters as in ``settings.training``.

    ``eval_train=True`` also scores the train split after every round, for a train-loss
    curve next to the validation one; it is off by default because it costs as much again
    as a round's validation (most of a job's overhead over bare ``xgboost.train``).

    >>> XGBoostTrainer(n_estimators=10).settings.n_estimators
    10
    """

    kind = "xgboost"
    tasks: tuple[str, ...] = tuple(OBJECTIVES)
    artifact_files: tuple[str, ...] = (MODEL_FILE, SIGNATURE_FILE)

    def __init__(
        self,
        n_estimators: int = 200,
        max_depth: int = 4,
        learning_rate: float = 0.1,
        seed: int = 42,
        eval_train: bool = False,
        **booster: Any,
    ) -> None:
        unknown = set(booster) - TUNABLE
        if unknown:
            raise ConfigError(
                f"XGBoost hyperparameters {sorted(unknown)} are not supported; "
                f"tunable besides n_estimators, max_depth, learning_rate, seed: {sorted(TUNABLE)}"
            )
        self.settings = TrainingSettings(
            n_estimators=n_estimators, max_depth=max_depth, learning_rate=learning_rate, seed=seed
        )
        self.booster = dict(booster)
        self.eval_train = eval_train

    def fit(
        self, split: Split, inputs: ModelInputs, device: str, workdir: Path,
        progress: EpochCallback | None = None,
    ) -> FitResult:
        """Train with early stopping on the validation split; save ``model.ubj`` and
        ``signature.json`` in workdir.

        ``progress`` is called once per boosting round after training (XGBoost runs in C++).
        """
        if split.validation.num_rows == 0:
            raise TrainerError(
                "the validation split is empty; early stopping needs validation rows"
            )
        inputs = inputs.with_classes(split)
        params = xgboost_params(split, self.settings, xgboost_device(device), inputs)
        params |= self.booster
        train = (features_matrix(split.train, inputs.features), target_vector(split.train, inputs))
        validation = (features_matrix(split.validation, inputs.features),
                      target_vector(split.validation, inputs))
        watched = [("train", train), ("val", validation)] if self.eval_train else [
            ("val", validation)]
        if inputs.task == "multiclass":
            booster, evals = _fit_multiclass(params, len(inputs.classes or ()), train, validation,
                                             self.eval_train)
        else:
            model = estimator(inputs, **params)
            # The last eval set drives early stopping, as in train_xgboost.
            model.fit(*train, eval_set=[data for _, data in watched], verbose=False)
            booster = model.get_booster()[: model.best_iteration + 1]
            evals = model.evals_result()
        booster.feature_names = list(inputs.features)
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        path = save_model(booster, workdir / MODEL_FILE)
        signature = write_signature(workdir, self, inputs, [path], objective=params["objective"])
        history = _history(evals, params["eval_metric"], [name for name, _ in watched])
        _replay(history, progress)
        params |= {"trees": booster.num_boosted_rounds(), "feature_columns": list(inputs.features),
                   "task": inputs.task,
                   "classes": None if inputs.classes is None else list(inputs.classes)}
        return FitResult([str(path), str(signature)], history, params)

    def predict(self, source: Path | Sequence[str | Path], X: np.ndarray) -> np.ndarray:
        """Load the booster in ``source`` (directory or its files) and score ``X``."""
        return self.load(artifact_dir(source)).predict(X)

    def load(self, path_dir: Path) -> LoadedXGBoost:
        """Load ``model.ubj`` and ``signature.json`` from ``path_dir``; a model saved before
        signatures existed gets one from the booster (its feature names and objective)."""
        booster = load_model(Path(path_dir) / MODEL_FILE)
        if (Path(path_dir) / SIGNATURE_FILE).is_file():
            signature = read_signature(path_dir)
            if signature.kind != self.kind:
                raise TrainerError(f"{path_dir} holds a {signature.kind!r} model, not xgboost")
            if booster.num_features() != len(signature.features):
                raise TrainerError(
                    f"{path_dir}: the booster reads {booster.num_features()} features, its "
                    f"signature lists {len(signature.features)}"
                )
        else:
            signature = legacy_signature(booster)
        return LoadedXGBoost(booster, signature)


def legacy_signature(booster: xgb.Booster) -> ArtifactSignature:
    """The signature of a booster saved without one: its feature names (``f0``, ... when it
    has none) and the task of its objective; the label is unknown."""
    names = booster.feature_names or [f"f{i}" for i in range(booster.num_features())]
    learner = json.loads(booster.save_config())["learner"]
    objective = learner["objective"]["name"]
    task = {"multi:softprob": "multiclass", "binary:logistic": "binary"}.get(
        objective, "regression" if objective.startswith("reg:") else "binary")
    classes = None
    if task == "multiclass":
        classes = tuple(range(int(learner["learner_model_param"]["num_class"])))
    inputs = ModelInputs(tuple(names), "label", task, classes)
    return ArtifactSignature("xgboost", inputs, (MODEL_FILE,), {"legacy": True})


def _fit_multiclass(
    params: dict[str, Any], classes: int, train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray], eval_train: bool = False,
) -> tuple[xgb.Booster, dict[str, Any]]:
    """``multi:softprob`` through ``xgb.train`` with ``num_class`` set, the same early stopping
    and eval-set names as the sklearn wrapper."""
    native = {k: v for k, v in params.items()
              if k not in ("n_estimators", "early_stopping_rounds", "n_jobs", "random_state")}
    native |= {"num_class": classes, "nthread": params["n_jobs"], "seed": params["random_state"]}
    dtrain = xgb.QuantileDMatrix(*train, nthread=params["n_jobs"])
    dval = xgb.QuantileDMatrix(*validation, ref=dtrain, nthread=params["n_jobs"])
    evals: dict[str, Any] = {}
    watched = [(dtrain, "validation_0"), (dval, "validation_1")] if eval_train else [
        (dval, "validation_0")]
    booster = xgb.train(
        native, dtrain, num_boost_round=params["n_estimators"], evals=watched,
        early_stopping_rounds=params.get("early_stopping_rounds", EARLY_STOPPING_ROUNDS),
        evals_result=evals, verbose_eval=False,
    )
    return booster[: booster.best_iteration + 1], evals


def _history(evals: dict[str, Any], metric: str, watched: list[str]) -> dict[str, list[float]]:
    """Per-round metric of each watched split (`validation_<i>` in XGBoost's names), as
    `<split>_<metric>`."""
    return {f"{name}_{metric}": [float(v) for v in evals[f"validation_{i}"][metric]]
            for i, name in enumerate(watched) if f"validation_{i}" in evals}


def _replay(history: dict[str, list[float]], progress: EpochCallback | None) -> None:
    if progress is None:
        return
    rounds = zip(*history.values(), strict=True)
    for number, values in enumerate(rounds, start=1):
        progress(number, dict(zip(history, values, strict=True)))
