"""Promotion gates: the checks a candidate model must pass before it becomes champion.

>>> check_gates({"roc_auc": 0.71}, None, min_auc=0.75, max_auc_regression=0.02)
GateResult(passed=False, reasons=['roc_auc 0.71 < min 0.75'])
>>> check_gates({"roc_auc": 0.90}, {"roc_auc": 0.91}, min_auc=0.75, max_auc_regression=0.02)
GateResult(passed=True, reasons=[])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fti.models.evaluation.slices import LOWER_IS_BETTER, SliceReport, largest_gap


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
    slice_report: SliceReport | None = None,
    max_slice_gap: float | None = None,
    slice_metric: str = "recall",
) -> GateResult:
    """Check a candidate's test metrics against a floor, against the champion and across slices.

    ``champion`` must be the champion's metrics on the SAME test split as the candidate's
    (None when there is no champion). Fails when the candidate's AUC is below ``min_auc``, when
    it is more than ``max_auc_regression`` below the champion's, or when the test split held a
    single class (AUC undefined).

    The slice gate runs only when ``max_slice_gap`` is given: it fails when the best and worst
    slices of a helper column (`fti.models.evaluation.slices.largest_gap` of ``slice_report`` on
    ``slice_metric``) differ by more than ``max_slice_gap``, or when no ``slice_report`` was
    given. A report without two comparable slices (too few rows) passes.

    >>> from fti.models.evaluation.slices import evaluate_slices
    >>> report = evaluate_slices({"country": ["DE", "DE", "FR", "FR"]}, [1, 1, 1, 1],
    ...                          [0.9, 0.8, 0.9, 0.1], min_rows=2)
    >>> result = check_gates({"roc_auc": 0.9}, None, 0.75, 0.02, report, max_slice_gap=0.2)
    >>> print(result.reasons[0])
    recall gap 0.5 across country > max 0.2: worst slice 'FR' 0.5, best slice 'DE' 1

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
    if max_slice_gap is not None:
        reasons.extend(_slice_reasons(slice_report, max_slice_gap, slice_metric))
    return GateResult(passed=not reasons, reasons=reasons)


def _slice_reasons(report: SliceReport | None, max_gap: float, metric: str) -> list[str]:
    """The slice gate's failure reason, if any."""
    if report is None:
        return [f"slice gate set (max {metric} gap {max_gap:.4g}) but no slice report was given"]
    gap = largest_gap(report, metric)
    if gap is None or gap.gap <= max_gap:
        return []
    direction = " (lower is better)" if metric in LOWER_IS_BETTER else ""
    return [
        f"{metric} gap {gap.gap:.4g} across {gap.column} > max {max_gap:.4g}: "
        f"worst slice {gap.worst!r} {gap.worst_value:.4g}, best slice {gap.best!r} "
        f"{gap.best_value:.4g}{direction}"
    ]
