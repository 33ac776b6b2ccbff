"""Gradient-boosted trees with XGBoost: train on a time split, save as UBJ, score in place.

Models are stored in XGBoost's own UBJ format, never pickled.

>>> import pyarrow as pa
>>> features_matrix(pa.table({name: [1.0, None] for name in FEATURE_COLUMNS})).shape
(2, 12)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xgboost as xgb

from fti.features.definitions import FEATURE_COLUMNS, LABEL_COLUMN
from fti.features.training_data import Split
from fti.models.errors import TrainerError
from fti.settings import TrainingSettings

MODEL_FILE = "model.ubj"
#: Rounds without improvement of validation log-loss before boosting stops.
EARLY_STOPPING_ROUNDS = 20
_THREADS = 2
_FORMATS = (".ubj", ".json")


def features_matrix(table: pa.Table) -> np.ndarray:
    """Model inputs as float32, columns in `FEATURE_COLUMNS` order, nulls as NaN."""
    missing = [name for name in FEATURE_COLUMNS if name not in table.column_names]
    if missing:
        raise TrainerError(f"table lacks feature columns {missing}; it has {table.column_names}")
    columns = [
        pc.fill_null(table[name].cast(pa.float64()), np.nan).to_numpy() for name in FEATURE_COLUMNS
    ]
    if not columns[0].size:
        return np.empty((0, len(FEATURE_COLUMNS)), dtype=np.float32)
    return np.column_stack(columns).astype(np.float32)


def labels_vector(table: pa.Table) -> np.ndarray:
    """The 0/1 label column as an int8 array."""
    return table[LABEL_COLUMN].to_numpy().astype(np.int8)


def xgboost_params(split: Split, params: TrainingSettings, device: str) -> dict[str, Any]:
    """Constructor arguments of the classifier; `scale_pos_weight` = negatives / positives."""
    y = labels_vector(split.train)
    positives = int(y.sum())
    negatives = len(y) - positives
    return {
        "n_estimators": params.n_estimators,
        "max_depth": params.max_depth,
        "learning_rate": params.learning_rate,
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "tree_method": "hist",
        "device": device,
        "random_state": params.seed,
        "n_jobs": _THREADS,
        "scale_pos_weight": negatives / positives if positives else 1.0,
        "early_stopping_rounds": EARLY_STOPPING_ROUNDS,
    }


def train_xgboost(split: Split, params: TrainingSettings, device: str) -> xgb.Booster:
    """Train on ``split.train`` with early stopping on ``split.validation``.

    The returned booster keeps only the trees up to the best validation round, so saving and
    reloading it predicts exactly what it predicted here.
    """
    if split.validation.num_rows == 0:
        raise TrainerError("the validation split is empty; early stopping needs validation rows")
    classifier = xgb.XGBClassifier(**xgboost_params(split, params, device))
    classifier.fit(
        features_matrix(split.train),
        labels_vector(split.train),
        eval_set=[(features_matrix(split.validation), labels_vector(split.validation))],
        verbose=False,
    )
    best = classifier.best_iteration
    booster = classifier.get_booster()[: best + 1]
    booster.feature_names = list(FEATURE_COLUMNS)
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
    """Fraud probabilities for rows of ``X`` (features in `FEATURE_COLUMNS` order)."""
    if X.ndim != 2 or X.shape[1] != len(FEATURE_COLUMNS):
        raise TrainerError(f"expected a (rows, {len(FEATURE_COLUMNS)}) matrix, got shape {X.shape}")
    if X.shape[0] == 0:
        return np.empty(0, dtype=np.float32)
    return np.asarray(booster.inplace_predict(X), dtype=np.float32)
