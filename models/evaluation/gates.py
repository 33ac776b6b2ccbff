"""Promotion gates: the checks a candidate model must pass before it becomes champion.

`check_metric_gates` checks any task's metrics against thresholds (a minimum, or a maximum for
a metric that is better when lower, `LOWER_IS_BETTER` of the model declaration) and the
task's primary metric against the champion's on the same test split; `check_task_gates` does
the same for a declared model. `check_gates` is the older binary gate on ROC AUC (with slices).

>>> check_metric_gates("regression", {"mae": 5.0, "r2": 0.5}, {"mae": 7.2, "r2": 0.7}).reasons
['mae 7.2 > 5.0 (gate max)']
>>> check_gates({"roc_auc": 0.71}, None, min_auc=0.75, max_auc_regression=0.02)
GateResult(passed=False, reasons=['roc_auc 0.71 < min 0.75'])
>>> check_gates({"roc_auc": 0.90}, {"roc_auc": 0.91}, min_auc=0.75, max_auc_regression=0.02)
GateResult(passed=True, reasons=[])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from fti.features.project.model import LOWER_IS_BETTER as TASK_LOWER_IS_BETTER
from fti.features.project.model import PRIMARY_METRIC, TASK_METRICS
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
        reasons.extend(_champion_reasons("roc_auc", auc, float(champion["roc_auc"]),
                                         max_auc_regression))
    if max_slice_gap is not None:
        reasons.extend(_slice_reasons(slice_report, max_slice_gap, slice_metric))
    return GateResult(passed=not reasons, reasons=reasons)


def _num(value: float) -> str:
    """A metric value as a reason shows it: at most 4 decimals, floats keep a decimal point."""
    return repr(round(float(value), 4))


def _champion_reasons(metric: str, ours: float, theirs: float, allowed: float) -> list[str]:
    """The regression check against the champion's ``metric`` on the same test split."""
    if metric in TASK_LOWER_IS_BETTER:
        ceiling = theirs + allowed
        if ours > ceiling:
            return [f"{metric} {ours:.4g} > champion {theirs:.4g} + max regression "
                    f"{allowed:.4g} = {ceiling:.4g} (same test split)"]
        return []
    floor = theirs - allowed
    if ours < floor:
        return [f"{metric} {ours:.4g} < champion {theirs:.4g} - max regression "
                f"{allowed:.4g} = {floor:.4g} (same test split)"]
    return []


def _value(metrics: Mapping[str, Any], metric: str) -> float | None:
    value = metrics.get(metric)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def check_metric_gates(
    task: str,
    gates: Mapping[str, float],
    candidate: Mapping[str, Any],
    champion: Mapping[str, Any] | None = None,
    max_regression: float | None = None,
) -> GateResult:
    """Check a candidate's test metrics of ``task`` against ``gates`` ({metric: threshold})
    and against the champion.

    A metric that is better when lower (`LOWER_IS_BETTER`: mae, rmse, log_loss, brier, ece)
    fails above its threshold (``gate max``), any other below it (``gate min``). When
    ``champion`` (its metrics on the SAME test split) and ``max_regression`` are given, the
    task's primary metric (`PRIMARY_METRIC`) may be at most ``max_regression`` worse than the
    champion's. A gate on a metric the task does not report, or that the candidate lacks,
    fails; so does a binary test split of a single class (ROC AUC undefined).

    >>> check_metric_gates("binary", {"roc_auc": 0.7}, {"roc_auc": 0.8},
    ...                    {"roc_auc": 0.9}, 0.05).reasons
    ['roc_auc 0.8 < champion 0.9 - max regression 0.05 = 0.85 (same test split)']
    >>> check_metric_gates("regression", {}, {"mae": 5.6}, {"mae": 5.0}, 0.5).reasons
    ['mae 5.6 > champion 5 + max regression 0.5 = 5.5 (same test split)']
    """
    reasons: list[str] = []
    if task not in TASK_METRICS:
        return GateResult(False, [f"task {task!r} is unknown; cannot check its gates"])
    if task == "binary" and candidate.get("single_class"):
        reasons.append(
            f"test split has a single class ({candidate.get('rows')} rows, "
            f"{candidate.get('positives')} positives): roc_auc is undefined"
        )
    for metric, threshold in gates.items():
        if metric not in TASK_METRICS[task]:
            reasons.append(f"gate {metric} is not a {task} metric "
                           f"({', '.join(TASK_METRICS[task])})")
            continue
        value = _value(candidate, metric)
        if value is None:
            reasons.append(f"{metric} is missing from the candidate's metrics")
        elif metric in TASK_LOWER_IS_BETTER and value > threshold:
            reasons.append(f"{metric} {_num(value)} > {_num(threshold)} (gate max)")
        elif metric not in TASK_LOWER_IS_BETTER and value < threshold:
            reasons.append(f"{metric} {_num(value)} < {_num(threshold)} (gate min)")
    primary = PRIMARY_METRIC[task]
    if champion is not None and max_regression is not None:
        ours, theirs = _value(candidate, primary), _value(champion, primary)
        if ours is None:
            reasons.append(f"{primary} is missing from the candidate's metrics")
        elif theirs is not None:
            reasons.extend(_champion_reasons(primary, ours, theirs, max_regression))
    return GateResult(passed=not reasons, reasons=reasons)


class GatedModel(Protocol):
    """What `check_task_gates` reads of a model declaration (`fti.features.project.Model`)."""

    task: str
    gates: Mapping[str, float]
    max_regression: float
    max_slice_gap: float | None


def check_task_gates(
    model: GatedModel,
    candidate: Mapping[str, Any],
    champion: Mapping[str, Any] | None = None,
    slice_report: SliceReport | None = None,
    slice_metric: str | None = None,
) -> GateResult:
    """`check_metric_gates` with a declared model's task, gates and max regression, plus its
    slice gate (``max_slice_gap``, on ``slice_metric``, default the primary metric) when set.
    Slice reports exist for binary models only; a slice gate without one fails.
    """
    result = check_metric_gates(model.task, model.gates, candidate, champion,
                                model.max_regression)
    reasons = list(result.reasons)
    if model.max_slice_gap is not None:
        metric = slice_metric or PRIMARY_METRIC[model.task]
        reasons.extend(_slice_reasons(slice_report, model.max_slice_gap, metric))
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
