"""Promotion gates: the checks a candidate model must pass before it becomes champion.

>>> check_gates({"roc_auc": 0.71}, None, min_auc=0.75, max_auc_regression=0.02)
GateResult(passed=False, reasons=['roc_auc 0.71 < min 0.75'])
>>> check_gates({"roc_auc": 0.90}, {"roc_auc": 0.91}, min_auc=0.75, max_auc_regression=0.02)
GateResult(passed=True, reasons=[])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class GateResult:
    """Whether the candidate passed, and one readable reason per failed check."""

    passed: bool
    reasons: list[str] = field(default_factory=list)


def check_gates(
    candidate: dict[str, Any],
    champion: dict[str, Any] | None,
    min_auc: float,
    max_auc_regression: float,
) -> GateResult:
    """Check a candidate's test metrics against a floor and against the champion.

    ``champion`` must be the champion's metrics on the SAME test split as the candidate's
    (None when there is no champion). Fails when the candidate's AUC is below ``min_auc``, when
    it is more than ``max_auc_regression`` below the champion's, or when the test split held a
    single class (AUC undefined).

    >>> check_gates({"roc_auc": 0.80}, {"roc_auc": 0.85}, 0.75, 0.02).reasons
    ['roc_auc 0.8 < champion 0.85 - max regression 0.02 = 0.83 (same test split)']
    """
    reasons: list[str] = []
    auc = float(candidate["roc_auc"])
    if candidate.get("single_class"):
        reasons.append(
            f"test split has a single class ({candidate.get('rows')} rows, "
            f"{candidate.get('positives')} positives): roc_auc is undefined"
        )
    if auc < min_auc:
        reasons.append(f"roc_auc {auc:.4g} < min {min_auc:.4g}")
    if champion is not None:
        floor = float(champion["roc_auc"]) - max_auc_regression
        if auc < floor:
            reasons.append(
                f"roc_auc {auc:.4g} < champion {float(champion['roc_auc']):.4g} - max regression "
                f"{max_auc_regression:.4g} = {floor:.4g} (same test split)"
            )
    return GateResult(passed=not reasons, reasons=reasons)
