"""Metrics of models/evaluation.py and the promotion gates of models/gates.py."""

from __future__ import annotations

import numpy as np
import pytest

from fti.errors import FtiError
from fti.models.evaluation.gates import check_gates
from fti.models.evaluation.metrics import evaluate


def _pairwise_auc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_pairwise_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) * 0.5 + 0.3 * y, 1)  # coarse values: many ties
    assert evaluate(y, scores)["roc_auc"] == pytest.approx(_pairwise_auc(y, scores), abs=1e-12)


def test_auc_extremes() -> None:
    y = np.array([0, 0, 1, 1])
    assert evaluate(y, [0.1, 0.2, 0.8, 0.9])["roc_auc"] == 1.0
    assert evaluate(y, [0.9, 0.8, 0.2, 0.1])["roc_auc"] == 0.0
    assert evaluate(y, [0.5, 0.5, 0.5, 0.5])["roc_auc"] == 0.5


def test_confusion_matrix_and_threshold_metrics() -> None:
    y = [1, 1, 1, 0, 0, 0, 0, 1]
    s = [0.9, 0.6, 0.2, 0.7, 0.1, 0.4, 0.5, 0.5]
    m = evaluate(y, s, threshold=0.5)
    assert m["confusion_matrix"] == {"tn": 2, "fp": 2, "fn": 1, "tp": 3}
    assert (m["rows"], m["positives"], m["single_class"]) == (8, 4, False)
    assert m["precision"] == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(2 * 0.6 * 0.75 / (0.6 + 0.75))
    assert m["accuracy"] == pytest.approx(5 / 8)


def test_single_class_is_flagged() -> None:
    m = evaluate([0, 0, 0], [0.1, 0.7, 0.2])
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
        evaluate(y, s)


def test_gates_threshold() -> None:
    assert check_gates({"roc_auc": 0.8}, None, 0.75, 0.02).passed
    failed = check_gates({"roc_auc": 0.71}, None, 0.75, 0.02)
    assert not failed.passed and failed.reasons == ["roc_auc 0.71 < min 0.75"]


def test_gates_regression_vs_champion() -> None:
    assert check_gates({"roc_auc": 0.84}, {"roc_auc": 0.85}, 0.75, 0.02).passed
    assert check_gates({"roc_auc": 0.90}, {"roc_auc": 0.85}, 0.75, 0.02).passed
    failed = check_gates({"roc_auc": 0.80}, {"roc_auc": 0.85}, 0.75, 0.02)
    assert not failed.passed
    assert failed.reasons == [
        "roc_auc 0.8 < champion 0.85 - max regression 0.02 = 0.83 (same test split)"
    ]


def test_gates_report_every_failure() -> None:
    result = check_gates(
        {"roc_auc": 0.5, "single_class": True, "rows": 9, "positives": 0},
        {"roc_auc": 0.9},
        0.75,
        0.02,
    )
    assert not result.passed and len(result.reasons) == 3
    assert "single class" in result.reasons[0]
