"""Model metrics per task in plain numpy: binary (ROC and PR AUC, threshold metrics, log-loss,
Brier score, calibration error; curves for plots), multiclass (accuracy, macro F1, log-loss,
per-class F1, confusion matrix), pairwise outcomes (the multiclass metrics, the majority
baseline and the margin over it, per-class recall and precision) and regression (MAE, RMSE,
R²).

`evaluate` reports, for a task, every metric of `TASK_METRICS` (the names a model's gates may
use) plus ``rows`` and a few non-gate details.

>>> m = evaluate("binary", [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
>>> m["roc_auc"], m["pr_auc"], m["confusion_matrix"]
(0.75, 0.8333333333333333, {'tn': 2, 'fp': 0, 'fn': 1, 'tp': 1})
>>> evaluate("regression", [1.0, 2.0, 3.0], [1.0, 2.0, 4.0])["mae"]
0.3333333333333333
>>> probabilities = [[0.8, 0.2], [0.4, 0.6], [0.7, 0.3]]
>>> m = evaluate("multiclass", ["a", "b", "b"], probabilities, classes=["a", "b"])
>>> round(m["accuracy"], 3), round(m["macro_f1"], 3), m["per_class"]["b"]
(0.667, 0.667, 0.6666666666666666)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from fti.models.errors import EvaluationError

#: Probabilities are clipped to [EPS, 1 - EPS] for log-loss, so it stays finite.
EPS = 1e-15
#: Equal-width probability bins of the expected calibration error.
ECE_BINS = 10


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


def log_loss(y_true: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean negative log-likelihood of 0/1 labels under P(label 1) (clipped to stay finite).

    >>> round(log_loss(np.array([0, 1]), np.array([0.2, 0.9])), 4)
    0.1643
    """
    p = np.clip(probabilities, EPS, 1 - EPS)
    return float(-np.mean(np.where(y_true == 1, np.log(p), np.log1p(-p))))


def expected_calibration_error(
    y_true: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS
) -> float:
    """|observed positive rate - mean probability| per equal-width bin, weighted by the
    bin's share of rows (the last bin includes 1.0).

    >>> expected_calibration_error(np.array([0, 1, 1, 1]), np.array([0.0, 1.0, 1.0, 0.5]))
    0.125
    """
    which = np.minimum((probabilities * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in np.unique(which):
        inside = which == b
        gap = abs(float(y_true[inside].mean()) - float(probabilities[inside].mean()))
        total += float(inside.mean()) * gap
    return float(total)


def evaluate(
    task: str,
    y_true: ArrayLike,
    scores: ArrayLike,
    threshold: float = 0.5,
    classes: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Metrics of a ``task``'s predictions: every name of ``TASK_METRICS[task]`` plus ``rows``
    (and details such as the confusion matrix).

    ``scores`` are what the task's model predicts: P(label 1) (binary, predicted positive when
    >= ``threshold``), probabilities (rows, classes) in ``classes`` order (multiclass; classes
    default to 0..k-1), values (regression).

    >>> sorted(evaluate("regression", [1.0, 2.0], [1.0, 3.0]))
    ['mae', 'mse', 'r2', 'rmse', 'rows']
    >>> evaluate("ranking", [1], [1])
    Traceback (most recent call last):
    ...
    fti.models.errors.EvaluationError: no metrics for task 'ranking'; tasks: binary, ...
    """
    if task == "binary":
        return evaluate_binary(y_true, scores, threshold)
    if task == "multiclass":
        return evaluate_multiclass(y_true, scores, classes)
    if task == "regression":
        return evaluate_regression(y_true, scores)
    if task == "preference":
        return evaluate_pairwise(y_true, scores, classes)
    raise EvaluationError(
        f"no metrics for task {task!r}; tasks: binary, multiclass, preference, regression"
    )


#: The name the task-generic training job uses.
evaluate_task = evaluate


def evaluate_binary(
    y_true: ArrayLike, scores: ArrayLike, threshold: float = 0.5
) -> dict[str, Any]:
    """Metrics of scores against 0/1 labels; a row is predicted positive when score >= threshold.

    With a single class in ``y_true`` the AUC is undefined: it is reported as 0.5 with
    ``single_class: True`` (False otherwise). Precision, recall and F1 are 0.0 when undefined.
    ``pr_auc`` is `average_precision` (0.0 without positives, 1.0 with positives only).
    ``log_loss``, ``brier`` and ``ece`` read the scores as probabilities (clipped to [0, 1]).

    >>> m = evaluate_binary([1, 1], [0.9, 0.2])
    >>> m["roc_auc"], m["single_class"], m["recall"]
    (0.5, True, 0.5)
    """
    y, s = _as_arrays(y_true, scores)
    p = np.clip(s, 0.0, 1.0)
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
        "log_loss": log_loss(y, p),
        "brier": float(np.mean((p - y) ** 2)),
        "ece": expected_calibration_error(y, p),
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


def _f1(tp: int, fp: int, fn: int) -> float:
    return _ratio(2 * tp, 2 * tp + fp + fn)


def evaluate_multiclass(
    y_true: ArrayLike, probabilities: ArrayLike, classes: Sequence[Any] | None = None
) -> dict[str, Any]:
    """Accuracy (of the most probable class), macro F1, log-loss, per-class F1 (``per_class``,
    class value as text → F1) and the confusion matrix (rows: actual, columns: predicted, in
    ``classes`` order) of ``probabilities`` (rows, classes) against class values ``y_true``.

    Macro F1 averages over the classes present in ``y_true`` or predicted (as scikit-learn's
    ``f1_score(average="macro")``); a label not among ``classes`` is an error.

    >>> p = [[.7, .2, .1], [.1, .8, .1], [.2, .2, .6], [.5, .3, .2]]
    >>> m = evaluate_multiclass([0, 1, 2, 2], p)
    >>> m["accuracy"], m["confusion_matrix"]
    (0.75, [[1, 0, 0], [0, 1, 0], [1, 0, 1]])
    """
    P = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(y_true, dtype=object).reshape(-1)
    if P.ndim != 2 or P.shape[0] != len(labels):
        raise EvaluationError(
            f"probabilities must be (rows, classes) with one row per label; got {P.shape} for "
            f"{len(labels)} labels"
        )
    if len(labels) == 0:
        raise EvaluationError("cannot evaluate on zero rows; the test split is empty")
    if not np.isfinite(P).all():
        raise EvaluationError("probabilities must be finite, got NaN/inf values")
    known = list(range(P.shape[1])) if classes is None else list(classes)
    if len(known) != P.shape[1]:
        raise EvaluationError(f"{len(known)} classes {known} for {P.shape[1]} probability columns")
    index = {_python(c): i for i, c in enumerate(known)}
    unknown = sorted({repr(_python(v)) for v in labels if _python(v) not in index})
    if unknown:
        raise EvaluationError(
            f"labels {', '.join(unknown[:10])} are not among the classes {known}"
        )
    actual = np.fromiter((index[_python(v)] for v in labels), dtype=np.int64, count=len(labels))
    predicted = np.argmax(P, axis=1)
    k = P.shape[1]
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (actual, predicted), 1)
    per_class: dict[str, float] = {}
    present: list[float] = []
    for i, value in enumerate(known):
        tp = int(confusion[i, i])
        fn = int(confusion[i].sum()) - tp
        fp = int(confusion[:, i].sum()) - tp
        per_class[str(value)] = _f1(tp, fp, fn)
        if tp + fn + fp:
            present.append(per_class[str(value)])
    true_p = np.clip(P[np.arange(len(actual)), actual], EPS, 1.0)
    return {
        "accuracy": float(np.mean(predicted == actual)),
        "macro_f1": float(np.mean(present)) if present else 0.0,
        "log_loss": float(-np.mean(np.log(true_p))),
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
        "classes": [_python(c) for c in known],
        "rows": len(actual),
    }


def evaluate_pairwise(
    y_true: ArrayLike, probabilities: ArrayLike, classes: Sequence[Any] | None = None
) -> dict[str, Any]:
    """`evaluate_multiclass` of pairwise outcomes (e.g. A wins, B wins, tie; a tie counts
    like any other class), plus the majority baseline: ``majority_accuracy`` (the share of the
    most frequent outcome in ``y_true``, what always predicting it scores),
    ``margin_over_majority`` (accuracy minus that), and per class ``per_class_recall``,
    ``per_class_precision`` and ``support``; ``min_class_recall`` is the worst class recall
    (ties never predicted make it 0).

    >>> p = [[.8, .1, .1], [.1, .8, .1], [.2, .2, .6], [.1, .2, .7]]
    >>> m = evaluate_pairwise(["A", "B", "tie", "tie"], p, ["A", "B", "tie"])
    >>> m["accuracy"], m["majority_accuracy"], m["margin_over_majority"], m["min_class_recall"]
    (1.0, 0.5, 0.5, 1.0)
    >>> evaluate_pairwise(["A", "tie"], [[.8, .1, .1], [.5, .1, .4]], ["A", "B", "tie"])[
    ...     "per_class_recall"]
    {'A': 1.0, 'B': 0.0, 'tie': 0.0}
    """
    metrics = evaluate_multiclass(y_true, probabilities, classes)
    confusion = np.asarray(metrics["confusion_matrix"], dtype=np.int64)
    support = confusion.sum(axis=1)
    names = [str(c) for c in metrics["classes"]]
    recall = {n: _ratio(int(confusion[i, i]), int(support[i])) for i, n in enumerate(names)}
    precision = {n: _ratio(int(confusion[i, i]), int(confusion[:, i].sum()))
                 for i, n in enumerate(names)}
    majority = float(support.max() / support.sum())
    present = [recall[n] for i, n in enumerate(names) if support[i]]
    return metrics | {
        "majority_accuracy": majority,
        "margin_over_majority": metrics["accuracy"] - majority,
        "min_class_recall": min(present) if present else 0.0,
        "per_class_recall": recall,
        "per_class_precision": precision,
        "support": {n: int(support[i]) for i, n in enumerate(names)},
    }


def _python(value: Any) -> Any:
    """A numpy scalar as its python value (so 1 and np.int64(1) are the same class)."""
    return value.item() if isinstance(value, np.generic) else value
