"""How well a LoRA preference classifier does: multiclass metrics and class probabilities.

>>> m = evaluate_multiclass([0, 1, 2, 1], [0, 1, 1, 1])
>>> m["rows"], m["class_counts"], m["per_class_precision"]["B"]
(4, {'A': 1, 'B': 2, 'tie': 1}, 0.6666666666666666)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from peft import PeftModel

from fti.errors import FtiError
from fti.events import WINNERS
from fti.models.evaluation.metrics import roc_auc
from fti.models.trainers.lora.config import NUM_LABELS
from fti.models.trainers.lora.data import EncodedPairs, _collate
from fti.models.trainers.lora.model import _mixed_precision


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def evaluate_multiclass(
    y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
    probs: np.ndarray | None = None, classes: Sequence[str] = WINNERS,
) -> dict[str, Any]:
    """Accuracy, macro F1, per-class recall/precision, confusion matrix (rows: actual,
    columns: predicted) and, given ``probs``, one-vs-rest ROC AUC per class."""
    y, p = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    k = len(classes)
    if len(y) == 0 or len(y) != len(p):
        raise FtiError(f"cannot evaluate {len(y)} labels against {len(p)} predictions")
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y, p), 1)
    tp, actual, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    recall = [_ratio(tp[c], actual[c]) for c in range(k)]
    precision = [_ratio(tp[c], predicted[c]) for c in range(k)]
    f1 = [_ratio(2 * tp[c], actual[c] + predicted[c]) for c in range(k)]
    metrics: dict[str, Any] = {
        "accuracy": _ratio(tp.sum(), len(y)),
        "macro_f1": float(np.mean(f1)),
        "per_class_recall": dict(zip(classes, recall, strict=True)),
        "per_class_precision": dict(zip(classes, precision, strict=True)),
        "per_class_f1": dict(zip(classes, f1, strict=True)),
        "confusion_matrix": cm.tolist(),
        "class_counts": dict(zip(classes, actual.tolist(), strict=True)),
        "rows": len(y),
    }
    if probs is not None:
        metrics["auc_ovr"] = {
            name: roc_auc((y == c).astype(np.int8), np.asarray(probs[:, c], dtype=np.float64))
            for c, name in enumerate(classes) if 0 < actual[c] < len(y)
        }  # fmt: skip
    return metrics


@torch.no_grad()
def predict_proba(
    model: PeftModel, pairs: EncodedPairs, device: str = "cpu", batch_size: int = 32
) -> np.ndarray:
    """Class probabilities (rows × 3) for encoded pairs."""
    model.eval()
    where = next(model.parameters()).device
    out = []
    for start in range(0, len(pairs), batch_size):
        inputs, _ = _collate(pairs, range(start, min(start + batch_size, len(pairs))), where)
        with _mixed_precision(device):
            logits = model(**inputs).logits
        out.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, NUM_LABELS))
