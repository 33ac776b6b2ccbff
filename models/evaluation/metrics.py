"""Model metrics in plain numpy: ROC and PR AUC, curves for plots, threshold and regression metrics.

>>> m = evaluate([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
>>> m["roc_auc"], m["pr_auc"], m["confusion_matrix"]
(0.75, 0.8333333333333333, {'tn': 2, 'fp': 0, 'fn': 1, 'tp': 1})
>>> evaluate_regression([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])["mae"]
0.3333333333333333
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from fti.models.errors import EvaluationError


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve via the rank-sum (Mann-Whitney U) form; ties count half.

    Needs both classes present; see `evaluate` for the single-class convention.

    >>> roc_auc(np.array([0, 1, 0, 1]), np.array([0.2, 0.2, 0.1, 0.9]))
    0.875
    """
    order = np.argsort(scores, kind="mergesort")
    ordered = scores[order]
    _, first, counts = np.unique(ordered, return_index=True, return_counts=True)
    average_rank = first + (counts + 1) / 2.0  # 1-based mean rank of each group of ties
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.repeat(average_rank, counts)
    positives = y_true == 1
    n_pos = int(positives.sum())
    n_neg = len(y_true) - n_pos
    u = ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _counts_by_threshold(
    y_true: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative (tp, fp) when predicting score >= t, for each distinct t, t descending."""
    order = np.argsort(-scores, kind="mergesort")
    ordered, labels = scores[order], y_true[order].astype(np.int64)
    last_of_group = np.r_[np.flatnonzero(np.diff(ordered)), len(ordered) - 1]
    tp = np.cumsum(labels)[last_of_group]
    fp = (last_of_group + 1) - tp
    return tp, fp, ordered[last_of_group]


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """PR AUC as step-wise average precision: sum over thresholds of (R_k - R_k-1) * P_k.

    Matches scikit-learn's ``average_precision_score`` (no interpolation); 0.0 without positives.

    >>> average_precision(np.array([0, 1, 1, 0]), np.array([0.1, 0.5, 0.5, 0.9]))
    0.6666666666666666
    """
    tp, fp, _ = _counts_by_threshold(y_true, scores)
    if tp[-1] == 0:
        return 0.0
    precision = tp / (tp + fp)
    recall_step = np.diff(tp, prepend=0) / tp[-1]
    return float(np.sum(recall_step * precision))


@dataclass(frozen=True)
class RocCurve:
    """ROC points by decreasing threshold, from (0, 0) (threshold +inf) to (1, 1)."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray


@dataclass(frozen=True)
class PrCurve:
    """Precision-recall points by decreasing threshold, from (recall 0, precision 1)."""

    recall: np.ndarray
    precision: np.ndarray
    thresholds: np.ndarray


def roc_curve(y_true: ArrayLike, scores: ArrayLike) -> RocCurve:
    """ROC curve points at every distinct score (for plots); needs both classes.

    >>> c = roc_curve([0, 1, 1, 0], [0.1, 0.5, 0.5, 0.9])
    >>> c.fpr.tolist(), c.tpr.tolist()
    ([0.0, 0.5, 0.5, 1.0], [0.0, 0.0, 1.0, 1.0])
    """
    y, s = _as_arrays(y_true, scores)
    tp, fp, thresholds = _counts_by_threshold(y, s)
    if tp[-1] == 0 or fp[-1] == 0:
        raise EvaluationError(f"a ROC curve needs both classes; y_true has {int(tp[-1])} positives")
    return RocCurve(
        fpr=np.r_[0.0, fp / fp[-1]],
        tpr=np.r_[0.0, tp / tp[-1]],
        thresholds=np.r_[np.inf, thresholds],
    )


def pr_curve(y_true: ArrayLike, scores: ArrayLike) -> PrCurve:
    """Precision-recall curve points at every distinct score (for plots); needs a positive.

    >>> c = pr_curve([0, 1, 1, 0], [0.1, 0.5, 0.5, 0.9])
    >>> c.recall.tolist(), c.precision.round(3).tolist()
    ([0.0, 0.0, 1.0, 1.0], [1.0, 0.0, 0.667, 0.5])
    """
    y, s = _as_arrays(y_true, scores)
    tp, fp, thresholds = _counts_by_threshold(y, s)
    if tp[-1] == 0:
        raise EvaluationError("a precision-recall curve needs at least one positive in y_true")
    return PrCurve(
        recall=np.r_[0.0, tp / tp[-1]],
        precision=np.r_[1.0, tp / (tp + fp)],
        thresholds=np.r_[np.inf, thresholds],
    )


def _as_arrays(y_true: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(y) != len(s):
        raise EvaluationError(f"y_true and scores differ in length: {len(y)} != {len(s)}")
    if len(y) == 0:
        raise EvaluationError("cannot evaluate on zero rows; the test split is empty")
    if not np.isin(y, (0, 1)).all():
        raise EvaluationError(
            f"y_true must hold only 0 and 1, got values {np.unique(y)[:10].tolist()}"
        )
    if not np.isfinite(s).all():
        raise EvaluationError(
            f"scores must be finite, got {int((~np.isfinite(s)).sum())} NaN/inf values"
        )
    return y.astype(np.int8), s


def _ratio(numerator: int, denominator: int) -> float:
    return float(numerator / denominator) if denominator else 0.0


def evaluate(y_true: ArrayLike, scores: ArrayLike, threshold: float = 0.5) -> dict[str, Any]:
    """Metrics of scores against 0/1 labels; a row is predicted positive when score >= threshold.

    With a single class in ``y_true`` the AUC is undefined: it is reported as 0.5 with
    ``single_class: True`` (False otherwise). Precision, recall and F1 are 0.0 when undefined.
    ``pr_auc`` is `average_precision` (0.0 without positives, 1.0 with positives only).

    >>> m = evaluate([1, 1], [0.9, 0.2])
    >>> m["roc_auc"], m["single_class"], m["recall"]
    (0.5, True, 0.5)
    """
    y, s = _as_arrays(y_true, scores)
    predicted = s >= threshold
    actual = y == 1
    tp = int((predicted & actual).sum())
    fp = int((predicted & ~actual).sum())
    fn = int((~predicted & actual).sum())
    tn = int((~predicted & ~actual).sum())
    single_class = tp + fn in (0, len(y))
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    return {
        "roc_auc": 0.5 if single_class else roc_auc(y, s),
        "pr_auc": average_precision(y, s),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "precision": precision,
        "recall": recall,
        "accuracy": _ratio(tp + tn, len(y)),
        "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "positives": tp + fn,
        "rows": len(y),
        "threshold": float(threshold),
        "single_class": single_class,
    }


def evaluate_regression(y_true: ArrayLike, predictions: ArrayLike) -> dict[str, float | int]:
    """MAE, MSE, RMSE and R² of ``predictions`` against ``y_true`` (as scikit-learn computes them).

    R² of a constant ``y_true`` is 1.0 for a perfect prediction, else 0.0 (sklearn's convention).

    >>> m = evaluate_regression([3.0, -0.5, 2.0, 7.0], [2.5, 0.0, 2.0, 8.0])
    >>> m["mae"], m["mse"], round(m["r2"], 4), m["rows"]
    (0.5, 0.375, 0.9486, 4)
    """
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(predictions, dtype=np.float64).reshape(-1)
    if len(y) != len(p):
        raise EvaluationError(f"y_true and predictions differ in length: {len(y)} != {len(p)}")
    if len(y) == 0:
        raise EvaluationError("cannot evaluate on zero rows; the test split is empty")
    if not (np.isfinite(y).all() and np.isfinite(p).all()):
        raise EvaluationError("y_true and predictions must be finite; found NaN/inf values")
    errors = p - y
    mse = float(np.mean(errors**2))
    total = float(np.sum((y - y.mean()) ** 2))
    residual = float(np.sum(errors**2))
    if total == 0.0:
        r2 = 1.0 if residual == 0.0 else 0.0
    else:
        r2 = 1.0 - residual / total
    return {
        "mae": float(np.mean(np.abs(errors))),
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "r2": r2,
        "rows": len(y),
    }
