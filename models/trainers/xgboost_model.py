"""Gradient-boosted trees with XGBoost: train on a time split, save as UBJ, score in place.

Models are stored in XGBoost's own UBJ format, never pickled. One objective per task:
``binary:logistic`` (binary), ``multi:softprob`` (multiclass; classes as indices 0..k-1),
``reg:squarederror`` (regression).

>>> import pyarrow as pa
>>> features_matrix(pa.table({"a": [1.0, None], "b": [2, 3]}), ["a", "b"]).shape
(2, 2)
>>> OBJECTIVES["multiclass"]
('multi:softprob', 'mlogloss')
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import xgboost as xgb

from fti.features.dataset_records import Split
from fti.models.errors import TrainerError
from fti.models.trainers.base import ModelInputs, binary_labels, table_matrix
from fti.settings import TrainingSettings

MODEL_FILE = "model.ubj"
#: Rounds without improvement of the validation loss before boosting stops.
EARLY_STOPPING_ROUNDS = 20
#: Task → (objective, evaluation metric whose validation value drives early stopping).
OBJECTIVES: dict[str, tuple[str, str]] = {
    "binary": ("binary:logistic", "logloss"),
    "multiclass": ("multi:softprob", "mlogloss"),
    "regression": ("reg:squarederror", "rmse"),
}
_THREADS = 2
_FORMATS = (".ubj", ".json")


def features_matrix(table: pa.Table, features: Sequence[str]) -> np.ndarray:
    """Model inputs as float32, columns in ``features`` order, nulls as NaN."""
    return table_matrix(table, features)


def labels_vector(table: pa.Table, label: str) -> np.ndarray:
    """The 0/1 label column ``label`` as an int8 array."""
    if label not in table.column_names:
        raise TrainerError(f"table lacks the label column {label!r}; it has {table.column_names}")
    return binary_labels(table[label].to_numpy(zero_copy_only=False), label)


def target_vector(table: pa.Table, inputs: ModelInputs) -> np.ndarray:
    """What XGBoost fits for ``inputs.task``: 0/1, class indices, or float values."""
    y = inputs.target(table)
    return inputs.class_index(y) if inputs.task == "multiclass" else y


def xgboost_params(
    split: Split, params: TrainingSettings, device: str, inputs: ModelInputs
) -> dict[str, Any]:
    """Constructor arguments of the XGBoost estimator for ``inputs.task``; a binary model
    weighs positives by negatives / positives of the train split (`scale_pos_weight`)."""
    if inputs.task not in OBJECTIVES:
        raise TrainerError(
            f"the XGBoost trainer fits {', '.join(OBJECTIVES)} models, not {inputs.task!r}"
        )
    objective, metric = OBJECTIVES[inputs.task]
    out: dict[str, Any] = {
        "n_estimators": params.n_estimators,
        "max_depth": params.max_depth,
        "learning_rate": params.learning_rate,
        "objective": objective,
        "eval_metric": metric,
        "tree_method": "hist",
        "device": device,
        "random_state": params.seed,
        "n_jobs": _THREADS,
        "early_stopping_rounds": EARLY_STOPPING_ROUNDS,
    }
    if inputs.task == "binary":
        y = labels_vector(split.train, inputs.label)
        positives = int(y.sum())
        negatives = len(y) - positives
        out["scale_pos_weight"] = negatives / positives if positives else 1.0
    return out


def estimator(inputs: ModelInputs, **params: Any) -> xgb.XGBModel:
    """The sklearn-style estimator of ``inputs.task`` (classifier or regressor)."""
    if inputs.task == "regression":
        return xgb.XGBRegressor(**params)
    return xgb.XGBClassifier(**params)


def train_xgboost(
    split: Split, params: TrainingSettings, device: str, inputs: ModelInputs
) -> xgb.Booster:
    """Train on ``split.train`` with early stopping on ``split.validation``.

    The returned booster keeps only the trees up to the best validation round, so saving and
    reloading it predicts exactly what it predicted here.
    """
    if split.validation.num_rows == 0:
        raise TrainerError("the validation split is empty; early stopping needs validation rows")
    inputs = inputs.with_classes(split)
    model = estimator(inputs, **xgboost_params(split, params, device, inputs))
    model.fit(
        features_matrix(split.train, inputs.features),
        target_vector(split.train, inputs),
        eval_set=[(features_matrix(split.validation, inputs.features),
                   target_vector(split.validation, inputs))],
        verbose=False,
    )
    booster = model.get_booster()[: model.best_iteration + 1]
    booster.feature_names = list(inputs.features)
    return booster


def save_model(booster: xgb.Booster, path: Path) -> Path:
    """Save in XGBoost's format chosen by the suffix (``.ubj``, or ``.json``); return the path."""
    path = Path(path)
    if path.suffix not in _FORMATS:
        raise TrainerError(f"model file must end in one of {list(_FORMATS)}, got {path.name!r}")
    booster.save_model(str(path))
    return path


def load_model(path: Path) -> xgb.Booster:
    """Load a model saved by `save_model` (check its sha256 first, e.g. via the registry)."""
    path = Path(path)
    if path.suffix not in _FORMATS:
        raise TrainerError(f"model file must end in one of {list(_FORMATS)}, got {path.name!r}")
    booster = xgb.Booster(params={"nthread": _THREADS})
    booster.load_model(str(path))
    return booster


def predict_scores(booster: xgb.Booster, X: np.ndarray) -> np.ndarray:
    """The booster's output for rows of ``X`` (features in training order), as float32:
    P(positive) for binary, (rows, classes) probabilities for multiclass, values for regression.
    """
    n = booster.num_features()
    if X.ndim != 2 or X.shape[1] != n:
        names = booster.feature_names
        shown = f" {list(names)}" if names else ""
        raise TrainerError(f"expected a matrix of {n} columns{shown} (in this order), "
                           f"got shape {X.shape}")
    if X.shape[0] == 0:
        classes = _num_class(booster)
        return np.empty((0, classes) if classes > 1 else 0, dtype=np.float32)
    return np.asarray(booster.inplace_predict(X), dtype=np.float32)


def _num_class(booster: xgb.Booster) -> int:
    """Number of classes of a multi:softprob booster (0 for other objectives)."""
    config = json.loads(booster.save_config())
    return int(config["learner"]["learner_model_param"].get("num_class", 0))
