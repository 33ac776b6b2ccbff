"""Feature importance: SHAP values of XGBoost trees, permutation importance for any model.

For a booster, XGBoost computes exact TreeSHAP contributions itself (``pred_contribs=True``):
one value per feature and row plus a bias column, summing to the margin (log-odds) prediction.
A feature's importance is its mean absolute contribution over the rows given (the test split).
Other models (the MLP, anything with ``predict(X)``) get permutation importance: how much the
task's score drops when one column is shuffled, averaged over seeded repeats (ROC AUC for
binary, accuracy for multiclass, negative MAE for regression: `task_score`).

>>> rng = np.random.default_rng(0)
>>> X = rng.random((200, 3))
>>> y = (X[:, 0] > 0.5).astype(int)
>>> ranked = permutation_importance(lambda m: m[:, 0], X, y, ["a", "b", "c"]).top(3)
>>> [(name, round(drop, 1)) for name, drop in ranked]
[('a', 0.5), ('b', 0.0), ('c', 0.0)]
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xgboost as xgb
from numpy.typing import ArrayLike

from fti.models.errors import EvaluationError
from fti.models.evaluation.metrics import evaluate_binary

#: A model's scoring function: rows of X in, one score per row out.
Predict = Callable[[np.ndarray], ArrayLike]
#: A score of predictions against labels; higher is better (default: ROC AUC).
Score = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class FeatureImportance:
    """Importance per feature, most important first, and the method that measured it."""

    method: str
    scores: tuple[tuple[str, float], ...]

    def top(self, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` most important (feature, importance) pairs.

        >>> FeatureImportance("m", (("a", 2.0), ("b", 1.0))).top(1)
        [('a', 2.0)]
        """
        return list(self.scores[:n])

    def to_markdown(self, n: int = 10) -> str:
        """The ``n`` most important features as a ranked markdown table.

        >>> print(FeatureImportance("m", (("a", 2.0), ("b", 1.0))).to_markdown(1))
        | rank | feature | importance |
        | ---: | --- | ---: |
        | 1 | `a` | 2 |
        """
        lines = ["| rank | feature | importance |", "| ---: | --- | ---: |"]
        for rank, (name, value) in enumerate(self.top(n), start=1):
            lines.append(f"| {rank} | `{name}` | {value:.4g} |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, e.g. for registry metadata."""
        return {"method": self.method, "scores": {name: value for name, value in self.scores}}


def _ranked(method: str, names: Sequence[str], values: np.ndarray) -> FeatureImportance:
    order = sorted(range(len(names)), key=lambda i: (-values[i], i))  # ties keep input order
    return FeatureImportance(method, tuple((names[i], float(values[i])) for i in order))


def _names(names: Sequence[str] | None, width: int) -> list[str]:
    names = list(names) if names is not None else [f"f{i}" for i in range(width)]
    if len(names) != width:
        raise EvaluationError(f"got {len(names)} feature names for a matrix of {width} columns")
    return names


def shap_contributions(booster: xgb.Booster, X: np.ndarray) -> np.ndarray:
    """TreeSHAP contributions, shape (rows, features + 1); the last column is the bias.
    A multiclass booster gives one such matrix per class: (rows, classes, features + 1).

    Each row sums to the booster's margin prediction (``output_margin=True``).
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise EvaluationError(f"expected a (rows, features) matrix, got shape {X.shape}")
    if X.shape[0] == 0:
        return np.empty((0, X.shape[1] + 1))
    names = booster.feature_names
    matrix = xgb.DMatrix(X, feature_names=names if names and len(names) == X.shape[1] else None)
    return np.asarray(booster.predict(matrix, pred_contribs=True), dtype=np.float64)


def shap_importance(
    booster: xgb.Booster, X: np.ndarray, feature_names: Sequence[str] | None = None
) -> FeatureImportance:
    """Mean |SHAP contribution| per feature over the rows of ``X``, most important first.

    Feature names default to the booster's own, else ``f0, f1, ...``.
    """
    contributions = shap_contributions(booster, X)[..., :-1]
    if contributions.shape[0] == 0:
        raise EvaluationError("cannot compute SHAP importance on zero rows")
    names = _names(feature_names or booster.feature_names, contributions.shape[-1])
    # Multiclass: the mean over rows and classes of each feature's |contribution|.
    mean_abs = np.abs(contributions).reshape(-1, contributions.shape[-1]).mean(axis=0)
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    unit = "in target units" if objective.startswith("reg:") else "in log-odds"
    if contributions.ndim == 3:
        unit = "over classes, in log-odds"
    return _ranked(f"SHAP (XGBoost TreeSHAP, mean |contribution| {unit})", names, mean_abs)


def _roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    return float(evaluate_binary(y, scores)["roc_auc"])


def task_score(task: str, classes: Sequence[Any] | None = None) -> Score:
    """The score permutation importance uses for ``task`` (higher is better): ROC AUC
    (binary), accuracy of the most probable class (multiclass, labels are class values in
    ``classes`` order, default 0..k-1), negative mean absolute error (regression).

    >>> task_score("regression")(np.array([1.0, 2.0]), np.array([1.0, 4.0]))
    -1.0
    """
    if task == "binary":
        return _roc_auc
    if task == "regression":
        return lambda y, predicted: -float(np.mean(np.abs(predicted - y.astype(np.float64))))
    if task in ("multiclass", "preference"):

        def accuracy(y: np.ndarray, probabilities: np.ndarray) -> float:
            known = list(range(probabilities.shape[1])) if classes is None else list(classes)
            index = {c: i for i, c in enumerate(known)}
            actual = np.array([index.get(v.item() if isinstance(v, np.generic) else v, -1)
                               for v in y])
            return float(np.mean(np.argmax(probabilities, axis=1) == actual))

        return accuracy
    raise EvaluationError(f"no importance score for task {task!r}")


def permutation_importance(
    predict: Predict,
    X: np.ndarray,
    y: ArrayLike,
    feature_names: Sequence[str] | None = None,
    n_repeats: int = 5,
    seed: int = 0,
    score: Score = _roc_auc,
) -> FeatureImportance:
    """Mean drop of ``score`` (default ROC AUC) when one column of ``X`` is shuffled.

    Model-agnostic: ``predict`` is any function scoring rows of ``X``. Seeded, so repeatable.
    """
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y).reshape(-1)
    if X.ndim != 2 or X.shape[0] != len(y) or len(y) == 0:
        raise EvaluationError(
            f"X of shape {X.shape} and y of {len(y)} rows must be non-empty, aligned"
        )
    names = _names(feature_names, X.shape[1])
    baseline = score(y, np.asarray(predict(X), dtype=np.float64))
    rng = np.random.default_rng(seed)
    drops = np.zeros(X.shape[1])
    for column in range(X.shape[1]):
        shuffled = X.copy()
        for _ in range(n_repeats):
            shuffled[:, column] = rng.permutation(X[:, column])
            drops[column] += baseline - score(y, np.asarray(predict(shuffled), dtype=np.float64))
    return _ranked(f"permutation ({n_repeats} repeats, drop in score)", names, drops / n_repeats)


def feature_importance(
    model: Any, X: np.ndarray, y: ArrayLike, feature_names: Sequence[str] | None = None,
    task: str = "binary", classes: Sequence[Any] | None = None,
) -> FeatureImportance:
    """SHAP importance for a model holding an XGBoost ``booster``, else permutation importance
    with the ``task``'s score (`task_score`).

    ``model`` is a booster, or a loaded model with ``.booster`` (`LoadedXGBoost`) or ``.predict``.
    """
    booster = model if isinstance(model, xgb.Booster) else getattr(model, "booster", None)
    if isinstance(booster, xgb.Booster):
        return shap_importance(booster, X, feature_names)
    if not callable(getattr(model, "predict", None)):
        raise EvaluationError(
            f"{type(model).__name__} has neither an XGBoost booster nor predict(X)"
        )
    return permutation_importance(model.predict, X, y, feature_names,
                                  score=task_score(task, classes))
