"""How a candidate is judged: test metrics, the champion on the same test, slices, gates;
and the evidence the model card shows (plots, importance, signature, dependencies)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from fti.features.definitions import FEATURE_COLUMNS
from fti.models.evaluation.gates import GateResult, check_gates
from fti.models.evaluation.importance import feature_importance
from fti.models.evaluation.metrics import evaluate
from fti.models.evaluation.model_card import build_card_assets, installed_versions
from fti.models.evaluation.slices import SliceReport, evaluate_slices, fraud_slice_columns
from fti.models.registry import CHAMPION, ModelRegistry, Signature
from fti.models.specs import ModelSpec
from fti.models.trainers import LoadedModel, load_version
from fti.models.trainers.xgboost_model import features_matrix, labels_vector


@dataclass(frozen=True)
class Assessment:
    """A candidate's results on the test split, next to the champion's on the same rows."""

    metrics: dict[str, Any]
    scores: np.ndarray
    champion_version: int | None
    champion_metrics: dict[str, Any] | None
    champion_scores: np.ndarray | None
    slices: SliceReport
    gates: GateResult


def assess(
    registry: ModelRegistry, spec: ModelSpec, test: pa.Table, candidate: LoadedModel,
    threshold: float,
) -> Assessment:
    """Score candidate and champion (sha256-checked, its own trainer) on `test`; gate."""
    X, y = features_matrix(test), labels_vector(test)
    scores = candidate.predict(X)
    metrics = evaluate(y, scores, threshold)
    champion_version = registry.alias(spec.name, CHAMPION)
    champion_scores = champion_metrics = None
    if champion_version is not None:
        champion_scores = load_version(registry, spec.name, champion_version).predict(X)
        champion_metrics = evaluate(y, champion_scores, threshold)
    slices = evaluate_slices(fraud_slice_columns(test), y, scores, None, threshold)
    gates = check_gates(
        metrics, champion_metrics, spec.min_auc, spec.max_auc_regression,
        slice_report=slices, max_slice_gap=spec.max_slice_gap,
    )
    return Assessment(metrics, scores, champion_version, champion_metrics, champion_scores,
                      slices, gates)


def card_evidence(
    workdir: Path, history: dict[str, list[float]], test: pa.Table, model: LoadedModel,
    assessment: Assessment, threshold: float,
) -> dict[str, Any]:
    """Write the card's plots into `workdir`; return the extra `ModelCardInfo` fields."""
    X, y = features_matrix(test), labels_vector(test)
    sample = _sample_rows(len(y), IMPORTANCE_ROWS)
    # Exact SHAP is linear in rows; a seeded sample gives the same ranking at a fraction.
    importance = feature_importance(model, X[sample], y[sample], FEATURE_COLUMNS)
    plots = build_card_assets(
        workdir, history, y, assessment.scores, assessment.champion_scores,
        assessment.slices, importance, threshold,
    )
    return {
        "plots": plots,
        "slices": assessment.slices,
        "importance": importance,
        "dependencies": installed_versions(),
        "signature": model_signature(),
    }


IMPORTANCE_ROWS = 5000


def _sample_rows(n: int, most: int, seed: int = 0) -> np.ndarray:
    """Indices of at most `most` of `n` rows, seeded, in order."""
    if n <= most:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=most, replace=False))


def model_signature() -> Signature:
    """The fraud models' signature: the features in order, one float score out."""
    return Signature.of(FEATURE_COLUMNS, "float32", ("fraud_score", "float32"))
