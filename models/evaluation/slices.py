"""Bias slices: metrics of the test split per value of a training helper column.

Helper columns (a user's country, gender, age, ...) are never model inputs; they only group the
test rows into evaluation slices, so a model that works well on average but badly for one group
is caught before promotion (`gates.check_gates`, ``max_slice_gap``). Numeric columns with
more distinct values than ``bins`` are cut into quantile bins; slices with fewer than
``min_rows`` rows are listed as skipped, not scored.

>>> y = [1, 0, 1, 0, 1, 0, 1, 0]
>>> s = [0.9, 0.1, 0.8, 0.2, 0.3, 0.1, 0.2, 0.4]
>>> report = evaluate_slices({"country": ["DE"] * 4 + ["FR"] * 4}, y, s, ["country"], min_rows=2)
>>> [(m.value, m.recall) for m in report.slices]
[('DE', 1.0), ('FR', 0.0)]
>>> largest_gap(report, "recall")[:5]
('recall', 'country', 'FR', 'DE', 1.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
from numpy.typing import ArrayLike

from fti.models.errors import EvaluationError
from fti.models.evaluation.metrics import evaluate_binary

#: Slice metrics `largest_gap` and the slice gate can compare.
SLICE_METRICS: tuple[str, ...] = ("roc_auc", "recall", "false_positive_rate", "f1", "precision")
#: Metrics where a lower value is the better one.
LOWER_IS_BETTER: frozenset[str] = frozenset({"false_positive_rate"})
#: Label of the slice holding null / NaN values.
MISSING = "missing"


@dataclass(frozen=True)
class SliceMetrics:
    """Metrics of one slice; a metric is None when undefined there (recall without positives)."""

    column: str
    value: str
    rows: int
    positives: int
    roc_auc: float | None
    recall: float | None
    false_positive_rate: float | None
    precision: float | None
    f1: float | None


@dataclass(frozen=True)
class SliceReport:
    """Scored slices (>= ``min_rows`` rows) and skipped ones, in column then slice order."""

    columns: tuple[str, ...]
    slices: tuple[SliceMetrics, ...]
    skipped: tuple[SliceMetrics, ...]
    threshold: float
    min_rows: int

    def for_column(self, column: str) -> list[SliceMetrics]:
        """The scored slices of ``column``."""
        return [m for m in self.slices if m.column == column]

    def to_markdown(self, metric: str = "recall") -> str:
        """Helper columns, the scored slices as a table, skipped slices, the largest gap.

        >>> r = evaluate_slices({"c": ["x", "x", "y"]}, [1, 0, 1], [0.9, 0.2, 0.1], min_rows=2)
        >>> print(r.to_markdown().splitlines()[4])
        | c | x | 2 | 1 | 1.0000 | 1.0000 | 0.0000 | 1.0000 | 1.0000 |
        """
        names = ", ".join(f"`{c}`" for c in self.columns)
        lines = [
            f"Helper columns (never model inputs): {names}; threshold {self.threshold:g}.\n",
            "| column | slice | rows | positives | roc_auc | recall | false positive rate "
            "| precision | f1 |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for m in self.slices:
            values = (m.roc_auc, m.recall, m.false_positive_rate, m.precision, m.f1)
            shown = " | ".join("n/a" if v is None else f"{v:.4f}" for v in values)
            lines.append(f"| {m.column} | {m.value} | {m.rows} | {m.positives} | {shown} |")
        if self.skipped:
            small = ", ".join(f"{m.column}={m.value} ({m.rows})" for m in self.skipped)
            lines.append(f"\nNot scored (fewer than {self.min_rows} rows): {small}.")
        gap = largest_gap(self, metric)
        if gap is None:
            lines.append(f"\nNo column has two scored slices with {metric} defined.")
        else:
            lines.append(
                f"\nLargest {metric} gap: {gap.gap:.4f} across `{gap.column}`: worst slice "
                f"`{gap.worst}` {gap.worst_value:.4f}, best slice `{gap.best}` "
                f"{gap.best_value:.4f}."
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, e.g. for registry metadata."""
        return {
            "columns": list(self.columns),
            "threshold": self.threshold,
            "min_rows": self.min_rows,
            "slices": [asdict(m) for m in self.slices],
            "skipped": [
                {"column": m.column, "value": m.value, "rows": m.rows} for m in self.skipped
            ],
        }


class SliceGap(NamedTuple):
    """The widest spread of one metric between two slices of one column."""

    metric: str
    column: str
    worst: str
    best: str
    gap: float
    worst_value: float
    best_value: float


def evaluate_slices(
    table_or_columns: pa.Table | Mapping[str, ArrayLike],
    y_true: ArrayLike,
    scores: ArrayLike,
    slice_columns: Sequence[str] | None = None,
    threshold: float = 0.5,
    min_rows: int = 30,
    bins: int = 4,
) -> SliceReport:
    """Score every slice of each helper column in ``slice_columns`` (None: all given columns).

    ``table_or_columns`` holds the helper columns aligned row by row with ``y_true``/``scores``
    (a pyarrow table, e.g. the test split with its helper columns, or a dict of arrays).

    >>> amount = {"amount": np.arange(8.0)}
    >>> r = evaluate_slices(amount, [0, 1] * 4, np.linspace(0, 1, 8), min_rows=1, bins=2)
    >>> [(m.value, m.rows) for m in r.slices]
    [('[0, 3.5)', 4), ('[3.5, 7]', 4)]
    """
    columns = _columns(table_or_columns)
    names = list(columns) if slice_columns is None else list(slice_columns)
    y, s = np.asarray(y_true).reshape(-1), np.asarray(scores, dtype=np.float64).reshape(-1)
    scored: list[SliceMetrics] = []
    skipped: list[SliceMetrics] = []
    for name in names:
        if name not in columns:
            raise EvaluationError(
                f"slice column {name!r} is not among the helper columns {list(columns)}"
            )
        values = np.asarray(columns[name])
        if len(values) != len(y) or len(s) != len(y):
            raise EvaluationError(
                f"slice column {name!r} has {len(values)} rows, y_true {len(y)}, scores {len(s)}; "
                "they must be aligned row by row"
            )
        for label, mask in _groups(values, bins):
            metrics = _slice_metrics(name, label, y[mask], s[mask], threshold)
            (scored if metrics.rows >= min_rows else skipped).append(metrics)
    return SliceReport(tuple(names), tuple(scored), tuple(skipped), float(threshold), min_rows)


def largest_gap(report: SliceReport, metric: str = "recall") -> SliceGap | None:
    """The column whose best and worst scored slices differ most in ``metric``.

    None when no column has two scored slices where ``metric`` is defined.
    """
    if metric not in SLICE_METRICS:
        raise EvaluationError(f"slice metric must be one of {list(SLICE_METRICS)}, got {metric!r}")
    lower_better = metric in LOWER_IS_BETTER
    widest: SliceGap | None = None
    for column in report.columns:
        defined = [m for m in report.for_column(column) if getattr(m, metric) is not None]
        if len(defined) < 2:
            continue
        ranked = sorted(defined, key=lambda m: getattr(m, metric), reverse=lower_better)
        worst, best = ranked[0], ranked[-1]
        worst_value, best_value = getattr(worst, metric), getattr(best, metric)
        gap = abs(best_value - worst_value)
        if widest is None or gap > widest.gap:
            widest = SliceGap(metric, column, worst.value, best.value, gap, worst_value, best_value)
    return widest


def _columns(source: pa.Table | Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
    if isinstance(source, pa.Table):
        return {n: source[n].to_numpy(zero_copy_only=False) for n in source.column_names}
    return {name: np.asarray(values) for name, values in source.items()}


def _groups(values: np.ndarray, bins: int) -> list[tuple[str, np.ndarray]]:
    """(slice label, row mask) pairs: quantile bins for many-valued numbers, else each value."""
    numeric = np.issubdtype(values.dtype, np.number) and not np.issubdtype(values.dtype, np.bool_)
    if numeric:
        values = values.astype(np.float64)
        missing = np.isnan(values)
        present = values[~missing]
        if len(np.unique(present)) > bins:
            groups = _quantile_bins(values, present, bins)
        else:
            groups = [(_label(v), values == v) for v in np.unique(present)]
    else:
        missing = np.array([v is None or v != v for v in values], dtype=bool)  # None or NaN
        text = np.array([str(v) for v in values], dtype=object)
        groups = [(str(v), (text == v) & ~missing) for v in sorted(set(text[~missing]))]
    if missing.any():
        groups.append((MISSING, missing))
    return groups


def _quantile_bins(
    values: np.ndarray, present: np.ndarray, bins: int
) -> list[tuple[str, np.ndarray]]:
    edges = np.unique(np.quantile(present, np.linspace(0.0, 1.0, bins + 1)))
    index = np.searchsorted(edges[1:-1], values, side="right")
    last = len(edges) - 2
    groups = []
    for i in range(last + 1):
        close = "]" if i == last else ")"
        label = f"[{_label(edges[i])}, {_label(edges[i + 1])}{close}"
        groups.append((label, (index == i) & ~np.isnan(values)))
    return groups


def _label(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def _slice_metrics(
    column: str, value: str, y: np.ndarray, s: np.ndarray, threshold: float
) -> SliceMetrics:
    rows = len(y)
    if rows == 0:
        return SliceMetrics(column, value, 0, 0, None, None, None, None, None)
    m = evaluate_binary(y, s, threshold)
    cm, positives = m["confusion_matrix"], m["positives"]
    negatives = rows - positives
    predicted = cm["tp"] + cm["fp"]
    return SliceMetrics(
        column=column,
        value=value,
        rows=rows,
        positives=positives,
        roc_auc=None if m["single_class"] else m["roc_auc"],
        recall=m["recall"] if positives else None,
        false_positive_rate=cm["fp"] / negatives if negatives else None,
        precision=m["precision"] if predicted else None,
        f1=m["f1"] if positives else None,
    )
