"""The XGBoost trainer behind the `Trainer` contract, built on `fti.models.trainers.xgboost_model`.

It trains exactly what `xgboost_model.train_xgboost` trains (same parameters, early
stopping on the validation split, trees cut at the best round) and also keeps the per-round
log-loss on the train and validation splits as the history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from fti.errors import ConfigError
from fti.features.definitions import FEATURE_COLUMNS
from fti.features.training_data import Split
from fti.models.devices import xgboost_device
from fti.models.errors import TrainerError
from fti.models.trainers.base import EpochCallback, FitResult, artifact_dir
from fti.models.trainers.xgboost_model import (
    MODEL_FILE,
    features_matrix,
    labels_vector,
    load_model,
    predict_scores,
    save_model,
    xgboost_params,
)
from fti.settings import TrainingSettings


@dataclass(frozen=True)
class LoadedXGBoost:
    """A booster loaded from UBJ, scoring through `predict_scores`."""

    booster: xgb.Booster

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Fraud probabilities for rows of ``X`` in `FEATURE_COLUMNS` order."""
        return predict_scores(self.booster, X)


#: Booster parameters a model spec (or `fti tune`) may set beyond the training settings.
TUNABLE = frozenset({
    "min_child_weight", "subsample", "colsample_bytree", "gamma", "reg_alpha", "reg_lambda",
    "n_jobs",
})


class XGBoostTrainer:
    """Gradient-boosted trees; hyperparameters as in ``settings.training``.

    >>> XGBoostTrainer(n_estimators=10).settings.n_estimators
    10
    """

    kind = "xgboost"
    artifact_files: tuple[str, ...] = (MODEL_FILE,)

    def __init__(
        self,
        n_estimators: int = 200,
        max_depth: int = 4,
        learning_rate: float = 0.1,
        seed: int = 42,
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

    def fit(
        self, split: Split, device: str, workdir: Path, progress: EpochCallback | None = None
    ) -> FitResult:
        """Train with early stopping on the validation split; save ``model.ubj`` in workdir.

        ``progress`` is called once per boosting round after training (XGBoost runs in C++).
        """
        if split.validation.num_rows == 0:
            raise TrainerError(
                "the validation split is empty; early stopping needs validation rows"
            )
        params = xgboost_params(split, self.settings, xgboost_device(device)) | self.booster
        train = (features_matrix(split.train), labels_vector(split.train))
        validation = (features_matrix(split.validation), labels_vector(split.validation))
        classifier = xgb.XGBClassifier(**params)
        # The last eval set drives early stopping, as in train_xgboost; the first adds history.
        classifier.fit(*train, eval_set=[train, validation], verbose=False)
        booster = classifier.get_booster()[: classifier.best_iteration + 1]
        booster.feature_names = list(FEATURE_COLUMNS)
        path = save_model(booster, Path(workdir) / MODEL_FILE)
        history = _history(classifier.evals_result())
        _replay(history, progress)
        params |= {"trees": booster.num_boosted_rounds(), "feature_columns": list(FEATURE_COLUMNS)}
        return FitResult([str(path)], history, params)

    def predict(self, source: Path | Sequence[str | Path], X: np.ndarray) -> np.ndarray:
        """Load the booster in ``source`` (directory or its files) and score ``X``."""
        return self.load(artifact_dir(source)).predict(X)

    def load(self, path_dir: Path) -> LoadedXGBoost:
        """Load ``model.ubj`` from ``path_dir``."""
        return LoadedXGBoost(load_model(Path(path_dir) / MODEL_FILE))


def _history(evals: dict[str, Any]) -> dict[str, list[float]]:
    names = {"validation_0": "train_logloss", "validation_1": "val_logloss"}
    return {names[k]: [float(v) for v in evals[k]["logloss"]] for k in names if k in evals}


def _replay(history: dict[str, list[float]], progress: EpochCallback | None) -> None:
    if progress is None:
        return
    rounds = zip(*history.values(), strict=True)
    for number, values in enumerate(rounds, start=1):
        progress(number, dict(zip(history, values, strict=True)))
