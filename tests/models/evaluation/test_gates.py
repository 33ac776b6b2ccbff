"""The promotion gates of models/evaluation/gates.py: minimum AUC, regression vs the champion."""

from __future__ import annotations

from fti.models.evaluation.gates import check_gates


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
