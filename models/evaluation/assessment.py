"""How a candidate is judged: test metrics of its task, the champion on the same test, slices,
gates; and the evidence the model card shows (plots, importance, signature, dependencies).

The gates come from a fraud `ModelSpec` (ROC AUC floor, `check_gates`) or from a declared
model (`fti.features.project.Model`: its task's gates, `check_task_gates`). What the model
reads and predicts is always passed explicitly as `ModelInputs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from fti.models.evaluation.gates import GateResult, check_gates, check_task_gates
from fti.models.evaluation.importance import feature_importance
from fti.models.evaluation.metrics import evaluate
from fti.models.evaluation.model_card import build_card_assets, installed_versions
from fti.models.evaluation.slices import SliceReport, evaluate_slices, fraud_slice_columns
from fti.models.registry import CHAMPION, ModelRegistry, Signature
from fti.models.trainers import LoadedModel, ModelInputs, load_version


@dataclass(frozen=True)
class Assessment:
    """A candidate's results on the test split, next to the champion's on the same rows."""

    metrics: dict[str, Any]
    scores: np.ndarray
    champion_version: int | None
    champion_metrics: dict[str, Any] | None
    champion_scores: np.ndarray | None
    slices: SliceReport | None
    gates: GateResult


def assess(
    registry: ModelRegistry, spec: Any, test: pa.Table, candidate: LoadedModel,
    threshold: float, inputs: ModelInputs,
) -> Assessment:
    """Score candidate and champion (sha256-checked, its own trainer) on `test` in the metrics
    of ``inputs.task``; gate.

    ``spec`` is a `fti.models.specs.ModelSpec` (binary: ``min_auc``, ``max_auc_regression``,
    ``max_slice_gap``) or a declared `fti.features.project.Model` (``gates``,
    ``max_regression``, ``max_slice_gap``). Bias slices are scored for binary models only.
    """
    X, y = inputs.matrix(test), inputs.target(test)
    scores = candidate.predict(X)
    metrics = evaluate(inputs.task, y, scores, threshold, inputs.classes)
    champion_version = registry.alias(spec.name, CHAMPION)
    champion_scores = champion_metrics = None
    if champion_version is not None:
        champion_scores = load_version(registry, spec.name, champion_version).predict(X)
        champion_metrics = evaluate(inputs.task, y, champion_scores, threshold, inputs.classes)
    slices = None
    if inputs.task == "binary":
        slices = evaluate_slices(fraud_slice_columns(test), y, scores, None, threshold)
    if hasattr(spec, "gates"):
        gates = check_task_gates(spec, metrics, champion_metrics, slices)
    else:
        gates = check_gates(
            metrics, champion_metrics, spec.min_auc, spec.max_auc_regression,
            slice_report=slices, max_slice_gap=spec.max_slice_gap,
        )
    return Assessment(metrics, scores, champion_version, champion_metrics, champion_scores,
                      slices, gates)


def card_evidence(
    workdir: Path, history: dict[str, list[float]], test: pa.Table, model: LoadedModel,
    assessment: Assessment, threshold: float, inputs: ModelInputs,
) -> dict[str, Any]:
    """Write the card's plots into `workdir`; return the extra `ModelCardInfo` fields."""
    X, y = inputs.matrix(test), inputs.target(test)
    sample = _sample_rows(len(y), IMPORTANCE_ROWS)
    # Exact SHAP is linear in rows; a seeded sample gives the same ranking at a fraction.
    importance = feature_importance(model, X[sample], y[sample], inputs.features,
                                    inputs.task, inputs.classes)
    plots = build_card_assets(
        workdir, history, y, assessment.scores, assessment.champion_scores,
        assessment.slices, importance, threshold, task=inputs.task, classes=inputs.classes,
    )
    return {
        "plots": plots,
        "slices": assessment.slices,
        "importance": importance,
        "dependencies": installed_versions(),
        "signature": model_signature(inputs),
        "features": inputs.features,
        "task": inputs.task,
    }


IMPORTANCE_ROWS = 5000


def _sample_rows(n: int, most: int, seed: int = 0) -> np.ndarray:
    """Indices of at most `most` of `n` rows, seeded, in order."""
    if n <= most:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=most, replace=False))


#: The registry signature's output column per task.
_OUTPUT = {"binary": ("score", "float32"), "multiclass": ("class_probabilities", "float32[]"),
           "regression": ("prediction", "float32"), "preference": ("class_probabilities",
                                                                   "float32[]")}


def model_signature(inputs: ModelInputs) -> Signature:
    """The registry signature of a model of ``inputs``: the features in order, float32 in;
    the task's output out.

    >>> model_signature(ModelInputs(("a",), "y", "regression")).output.name
    'prediction'
    """
    return Signature.of(inputs.features, "float32", _OUTPUT[inputs.task])
