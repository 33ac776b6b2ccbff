"""Binary classification metrics in plain numpy: ROC AUC from ranks, and threshold metrics.

>>> m = evaluate([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
>>> m["roc_auc"], m["confusion_matrix"]
(0.75, {'tn': 2, 'fp': 0, 'fn': 1, 'tp': 1})
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from fti.errors import FtiError


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


def _as_arrays(y_true: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(y) != len(s):
        raise FtiError(f"y_true and scores differ in length: {len(y)} != {len(s)}")
    if len(y) == 0:
        raise FtiError("cannot evaluate on zero rows; the test split is empty")
    if not np.isin(y, (0, 1)).all():
        raise FtiError(f"y_true must hold only 0 and 1, got values {np.unique(y)[:10].tolist()}")
    if not np.isfinite(s).all():
        raise FtiError(f"scores must be finite, got {int((~np.isfinite(s)).sum())} NaN/inf values")
    return y.astype(np.int8), s


def _ratio(numerator: int, denominator: int) -> float:
    return float(numerator / denominator) if denominator else 0.0


def evaluate(y_true: ArrayLike, scores: ArrayLike, threshold: float = 0.5) -> dict[str, Any]:
    """Metrics of scores against 0/1 labels; a row is predicted positive when score >= threshold.

    With a single class in ``y_true`` the AUC is undefined: it is reported as 0.5 with
    ``single_class: True`` (False otherwise). Precision, recall and F1 are 0.0 when undefined.

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
