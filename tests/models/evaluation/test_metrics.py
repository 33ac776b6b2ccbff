"""Metrics of models/evaluation/metrics.py: ROC AUC by hand, the confusion matrix and
threshold metrics; PR AUC, ROC / PR curve points and regression metrics vs scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from fti.errors import FtiError
from fti.models.evaluation.metrics import (
    average_precision,
    evaluate_binary,
    evaluate_regression,
    pr_curve,
    roc_curve,
)


def _pairwise_auc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_pairwise_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) * 0.5 + 0.3 * y, 1)  # coarse values: many ties
    expected = _pairwise_auc(y, scores)
    assert evaluate_binary(y, scores)["roc_auc"] == pytest.approx(expected, abs=1e-12)


def test_auc_extremes() -> None:
    y = np.array([0, 0, 1, 1])
    assert evaluate_binary(y, [0.1, 0.2, 0.8, 0.9])["roc_auc"] == 1.0
    assert evaluate_binary(y, [0.9, 0.8, 0.2, 0.1])["roc_auc"] == 0.0
    assert evaluate_binary(y, [0.5, 0.5, 0.5, 0.5])["roc_auc"] == 0.5


def test_confusion_matrix_and_threshold_metrics() -> None:
    y = [1, 1, 1, 0, 0, 0, 0, 1]
    s = [0.9, 0.6, 0.2, 0.7, 0.1, 0.4, 0.5, 0.5]
    m = evaluate_binary(y, s, threshold=0.5)
    assert m["confusion_matrix"] == {"tn": 2, "fp": 2, "fn": 1, "tp": 3}
    assert (m["rows"], m["positives"], m["single_class"]) == (8, 4, False)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(2 * 0.6 * 0.75 / (0.6 + 0.75))
    assert m["accuracy"] == pytest.approx(5 / 8)


def test_single_class_is_flagged() -> None:
    m = evaluate_binary([0, 0, 0], [0.1, 0.7, 0.2])
    assert (m["roc_auc"], m["single_class"], m["precision"], m["recall"], m["f1"]) == (
        0.5,
        True,
        0.0,
        0.0,
        0.0,
    )


@pytest.mark.parametrize(
    ("y", "s", "match"),
    [
        ([0, 1], [0.1], "differ in length"),
        ([], [], "zero rows"),
        ([0, 2], [0.1, 0.2], "only 0"),
        ([0, 1], [0.1, float("nan")], "finite"),
    ],
)
def test_bad_inputs(y: list, s: list, match: str) -> None:
    with pytest.raises(FtiError, match=match):
        evaluate_binary(y, s)


# -- vs scikit-learn: PR AUC, curves, regression ---------------------------------------------


def _tied_data(seed: int, rows: int = 400, rate: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < rate).astype(int)
    scores = np.round(rng.random(rows) * 0.6 + 0.3 * y, 1)  # coarse values: many ties
    return y, scores


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("rate", [0.03, 0.3, 0.7])
def test_pr_auc_matches_sklearn_with_ties(seed: int, rate: float) -> None:
    y, scores = _tied_data(seed, rate=rate)
    expected = skm.average_precision_score(y, scores)
    assert average_precision(y, scores) == pytest.approx(expected, abs=1e-12)
    assert evaluate_binary(y, scores)["pr_auc"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_pr_auc_matches_sklearn_without_ties(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    y = rng.integers(0, 2, 1000)
    scores = rng.random(1000) + 0.4 * y
    assert evaluate_binary(y, scores)["pr_auc"] == pytest.approx(
        skm.average_precision_score(y, scores), abs=1e-12
    )


def test_pr_auc_single_class_conventions() -> None:
    assert evaluate_binary([0, 0, 0], [0.1, 0.5, 0.9])["pr_auc"] == 0.0
    assert evaluate_binary([1, 1], [0.1, 0.9])["pr_auc"] == 1.0
    assert evaluate_binary([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8])["pr_auc"] == 1.0


@pytest.mark.parametrize("seed", range(4))
def test_roc_curve_points_match_sklearn(seed: int) -> None:
    y, scores = _tied_data(seed)
    curve = roc_curve(y, scores)
    fpr, tpr, thresholds = skm.roc_curve(y, scores, drop_intermediate=False)
    np.testing.assert_allclose(curve.fpr, fpr)
    np.testing.assert_allclose(curve.tpr, tpr)
    np.testing.assert_array_equal(curve.thresholds, thresholds)


@pytest.mark.parametrize("seed", range(4))
def test_roc_curve_is_monotone_and_its_area_is_the_auc(seed: int) -> None:
    y, scores = _tied_data(seed)
    curve = roc_curve(y, scores)
    assert (curve.fpr[0], curve.tpr[0]) == (0.0, 0.0)
    assert (curve.fpr[-1], curve.tpr[-1]) == (1.0, 1.0)
    assert np.all(np.diff(curve.fpr) >= 0) and np.all(np.diff(curve.tpr) >= 0)
    assert np.all(np.diff(curve.thresholds) < 0)
    auc = evaluate_binary(y, scores)["roc_auc"]
    assert np.trapezoid(curve.tpr, curve.fpr) == pytest.approx(auc)


@pytest.mark.parametrize("seed", range(4))
def test_pr_curve_points_match_sklearn_and_area_is_ap(seed: int) -> None:
    y, scores = _tied_data(seed)
    curve = pr_curve(y, scores)
    precision, recall, thresholds = skm.precision_recall_curve(y, scores)
    # sklearn orders by increasing threshold and appends (recall 0, precision 1) last
    np.testing.assert_allclose(curve.precision[1:], precision[:-1][::-1])
    np.testing.assert_allclose(curve.recall[1:], recall[:-1][::-1])
    np.testing.assert_array_equal(curve.thresholds[1:], thresholds[::-1])
    assert (curve.recall[0], curve.precision[0], curve.recall[-1]) == (0.0, 1.0, 1.0)
    assert np.all(np.diff(curve.recall) >= 0) and np.all(np.diff(curve.thresholds) < 0)
    step_area = np.sum(np.diff(curve.recall) * curve.precision[1:])
    assert step_area == pytest.approx(average_precision(y, scores), abs=1e-12)


def test_curves_need_the_classes_they_plot() -> None:
    with pytest.raises(FtiError, match="both classes"):
        roc_curve([1, 1], [0.2, 0.3])
    with pytest.raises(FtiError, match="at least one positive"):
        pr_curve([0, 0], [0.2, 0.3])
    with pytest.raises(FtiError, match="differ in length"):
        roc_curve([0, 1], [0.2])


@pytest.mark.parametrize("seed", range(4))
def test_regression_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(10, 3, 250)
    pred = y + rng.normal(0, 1.5, 250)
    m = evaluate_regression(y, pred)
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert m["mse"] == pytest.approx(skm.mean_squared_error(y, pred))
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert m["r2"] == pytest.approx(skm.r2_score(y, pred))
    assert m["rows"] == 250


def test_regression_constant_target_follows_sklearn() -> None:
    assert evaluate_regression([2.0, 2.0], [2.0, 2.0])["r2"] == skm.r2_score([2.0, 2.0], [2, 2])
    assert evaluate_regression([2.0, 2.0], [1.0, 2.0])["r2"] == skm.r2_score([2.0, 2.0], [1, 2])


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [([1.0], [1.0, 2.0], "differ in length"), ([], [], "zero rows"), ([1.0], [np.nan], "finite")],
)
def test_regression_bad_inputs(y: list, p: list, match: str) -> None:
    with pytest.raises(FtiError, match=match):
        evaluate_regression(y, p)
