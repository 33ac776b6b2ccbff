"""PNG plots for model cards: loss curve, ROC and PR curves, confusion matrices (binary and
multiclass), residuals (regression), slices, importance.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no
global state), at fixed sizes, so the same inputs give the same image. Every function writes one
PNG to ``path`` and returns the path.

>>> import tempfile
>>> from pathlib import Path
>>> with tempfile.TemporaryDirectory() as tmp:
...     png = plot_confusion_matrix({"tn": 90, "fp": 3, "fn": 2, "tp": 5}, Path(tmp) / "cm.png")
...     png.read_bytes()[:8] == PNG_MAGIC
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from fti.models.errors import EvaluationError
from fti.models.evaluation.importance import FeatureImportance
from fti.models.evaluation.metrics import average_precision, pr_curve, roc_auc, roc_curve
from fti.models.evaluation.slices import LOWER_IS_BETTER, SliceReport

#: First bytes of every PNG file.
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: Size of the square-ish plots in inches, and their resolution: 640 x 480 pixels.
FIGSIZE = (6.4, 4.8)
DPI = 100
_CANDIDATE, _CHAMPION, _BASELINE = "#1f77b4", "#ff7f0e", "#7f7f7f"


def _figure(size: tuple[float, float] = FIGSIZE) -> Figure:
    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path


def plot_loss_curve(
    history: Mapping[str, Sequence[float]], path: Path, title: str = "Training loss"
) -> Path:
    """One line per series of ``history`` (e.g. ``train_logloss``, ``val_logloss``) per round.

    The round with the lowest validation loss (a series whose name starts with ``val``) is
    marked, as early stopping picks it.
    """
    series = {name: list(values) for name, values in history.items() if len(values)}
    if not series:
        raise EvaluationError("the training history is empty; there is no loss curve to plot")
    figure = _figure()
    axes = figure.add_subplot()
    for name, values in series.items():
        axes.plot(np.arange(1, len(values) + 1), values, label=name, linewidth=1.6)
    validation = next((v for n, v in series.items() if n.startswith("val")), None)
    if validation is not None:
        best = int(np.argmin(validation))
        axes.axvline(best + 1, color=_BASELINE, linestyle=":", label=f"best round {best + 1}")
    axes.set(title=title, xlabel="round / epoch", ylabel="loss")
    axes.grid(alpha=0.3)
    axes.legend()
    return _save(figure, path)


def plot_roc_curve(
    y_true: ArrayLike, scores: ArrayLike, path: Path, champion_scores: ArrayLike | None = None
) -> Path:
    """ROC curve of the candidate (and of the champion on the same rows), AUC in the legend."""
    figure = _figure()
    axes = figure.add_subplot()
    y = np.asarray(y_true)
    for label, values, color in _models(scores, champion_scores):
        curve = roc_curve(y, values)
        auc = roc_auc(y, np.asarray(values, dtype=np.float64))
        axes.step(curve.fpr, curve.tpr, where="post", color=color, label=f"{label} (AUC {auc:.3f})")
    axes.plot([0, 1], [0, 1], color=_BASELINE, linestyle="--", label="chance")
    axes.set(
        title="ROC curve (test split)",
        xlabel="false positive rate",
        ylabel="true positive rate (recall)",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    return _save(figure, path)


def plot_pr_curve(
    y_true: ArrayLike, scores: ArrayLike, path: Path, champion_scores: ArrayLike | None = None
) -> Path:
    """Precision-recall curve(s), average precision in the legend, the positive rate as baseline."""
    figure = _figure()
    axes = figure.add_subplot()
    y = np.asarray(y_true)
    for label, values, color in _models(scores, champion_scores):
        curve = pr_curve(y, values)
        ap = average_precision(y, np.asarray(values, dtype=np.float64))
        axes.step(
            curve.recall, curve.precision, where="pre", color=color, label=f"{label} (AP {ap:.3f})"
        )
    rate = float(np.mean(y == 1))
    axes.axhline(rate, color=_BASELINE, linestyle="--", label=f"positive rate {rate:.3f}")
    axes.set(
        title="Precision-recall curve (test split)",
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left")
    return _save(figure, path)


def _models(
    scores: ArrayLike, champion_scores: ArrayLike | None
) -> list[tuple[str, ArrayLike, str]]:
    models = [("candidate", scores, _CANDIDATE)]
    if champion_scores is not None:
        models.append(("champion", champion_scores, _CHAMPION))
    return models


def plot_confusion_matrix(confusion: Mapping[str, int], path: Path, threshold: float = 0.5) -> Path:
    """Heatmap of a ``{"tn", "fp", "fn", "tp"}`` confusion matrix with counts and row shares."""
    try:
        cells = np.array([[confusion["tn"], confusion["fp"]], [confusion["fn"], confusion["tp"]]])
    except KeyError as ex:
        raise EvaluationError(
            f"confusion matrix needs tn, fp, fn, tp; got {sorted(confusion)}"
        ) from ex
    figure = _figure((5.2, 4.4))
    axes = figure.add_subplot()
    image = axes.imshow(cells, cmap="Blues", vmin=0)
    figure.colorbar(image, ax=axes, shrink=0.8, label="rows")
    totals = cells.sum(axis=1, keepdims=True)
    shares = np.divide(cells, totals, out=np.zeros(cells.shape), where=totals > 0)
    for (row, col), count in np.ndenumerate(cells):
        dark = count > cells.max() / 2
        axes.text(
            col,
            row,
            f"{count}\n({shares[row, col]:.1%} of row)",
            ha="center",
            va="center",
            color="white" if dark else "black",
            fontsize=11,
        )
    axes.set_xticks([0, 1], labels=["predicted 0", "predicted 1"])
    axes.set_yticks([0, 1], labels=["actual 0", "actual 1"])
    axes.set_title(f"Confusion matrix (test, threshold {threshold:g})")
    return _save(figure, path)


def plot_class_confusion(
    matrix: Sequence[Sequence[int]], classes: Sequence[Any], path: Path
) -> Path:
    """Heatmap of a multiclass confusion matrix (rows: actual, columns: predicted, in
    ``classes`` order) with counts and the share of each actual class."""
    cells = np.asarray(matrix, dtype=np.int64)
    k = len(classes)
    if cells.shape != (k, k):
        raise EvaluationError(f"confusion matrix of shape {cells.shape} for {k} classes")
    side = min(4.4 + 0.45 * k, 12.0)
    figure = _figure((side + 0.8, side))
    axes = figure.add_subplot()
    image = axes.imshow(cells, cmap="Blues", vmin=0)
    figure.colorbar(image, ax=axes, shrink=0.8, label="rows")
    totals = cells.sum(axis=1, keepdims=True)
    shares = np.divide(cells, totals, out=np.zeros(cells.shape), where=totals > 0)
    if k <= 12:  # beyond that the numbers would not fit in their cells
        for (row, col), count in np.ndenumerate(cells):
            axes.text(col, row, f"{count}\n{shares[row, col]:.0%}", ha="center", va="center",
                      color="white" if count > cells.max() / 2 else "black", fontsize=8)
    labels = [str(c) for c in classes]
    axes.set_xticks(range(k), labels=labels, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(range(k), labels=labels, fontsize=8)
    axes.set(xlabel="predicted class", ylabel="actual class",
             title="Confusion matrix (test, most probable class)")
    return _save(figure, path)


def plot_residuals(
    y_true: ArrayLike, predictions: ArrayLike, path: Path,
    champion_predictions: ArrayLike | None = None,
) -> Path:
    """Residuals (prediction - actual) against the prediction, for the candidate (and the
    champion on the same rows), with the zero line and the MAE in the legend."""
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    if len(y) == 0:
        raise EvaluationError("no rows to plot residuals of")
    figure = _figure()
    axes = figure.add_subplot()
    for label, values, color in _models(predictions, champion_predictions):
        p = np.asarray(values, dtype=np.float64).reshape(-1)
        if len(p) != len(y):
            raise EvaluationError(f"{len(p)} predictions for {len(y)} targets")
        residuals = p - y
        axes.scatter(p, residuals, s=6, alpha=0.5, color=color,
                     label=f"{label} (MAE {np.mean(np.abs(residuals)):.4g})")
    axes.axhline(0.0, color=_BASELINE, linestyle="--", label="no error")
    axes.set(title="Residuals (test split)", xlabel="prediction", ylabel="prediction - actual")
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    return _save(figure, path)


def plot_slice_metric(report: SliceReport, path: Path, metric: str = "recall") -> Path:
    """Horizontal bars of ``metric`` per scored slice, grouped and colored by helper column."""
    slices = list(report.slices)
    if not slices:
        raise EvaluationError(f"no slice has >= {report.min_rows} rows; there is nothing to plot")
    height = min(2.0 + 0.32 * len(slices), 12.0)
    figure = _figure((7.2, height))
    axes = figure.add_subplot()
    colors = {column: f"C{i % 10}" for i, column in enumerate(report.columns)}
    positions = np.arange(len(slices))[::-1]
    values = [getattr(m, metric) for m in slices]
    axes.barh(
        positions,
        [0.0 if v is None else v for v in values],
        color=[colors[m.column] for m in slices],
    )
    for position, value in zip(positions, values, strict=True):
        if value is None:
            axes.text(0.01, position, "n/a (undefined)", va="center", fontsize=8)
        elif value > 0.2:  # inside the bar's end, white on color
            axes.text(
                value - 0.01,
                position,
                f"{value:.3f}",
                va="center",
                ha="right",
                color="white",
                fontsize=8,
                fontweight="bold",
            )
        else:
            axes.text(value + 0.01, position, f"{value:.3f}", va="center", fontsize=8)
    labels = [f"{m.column}={m.value} ({m.rows} rows, {m.positives} positive)" for m in slices]
    axes.set_yticks(positions, labels=labels, fontsize=8)
    better = "lower" if metric in LOWER_IS_BETTER else "higher"
    axes.set(
        title=f"{metric} per slice ({better} is better, threshold {report.threshold:g})",
        xlabel=metric,
        xlim=(0, 1.05),
    )
    axes.grid(axis="x", alpha=0.3)
    return _save(figure, path)


def plot_importance(importance: FeatureImportance, path: Path, top: int = 10) -> Path:
    """Horizontal bars of the ``top`` most important features, most important on top."""
    pairs = importance.top(top)
    if not pairs:
        raise EvaluationError("feature importance is empty; there is nothing to plot")
    figure = _figure((7.2, 1.5 + 0.35 * len(pairs)))
    axes = figure.add_subplot()
    positions = np.arange(len(pairs))[::-1]
    axes.barh(positions, [value for _, value in pairs], color=_CANDIDATE)
    axes.set_yticks(positions, labels=[name for name, _ in pairs], fontsize=9)
    axes.set(title=f"Feature importance: {importance.method}", xlabel="importance")
    axes.title.set_fontsize(9)
    axes.grid(axis="x", alpha=0.3)
    return _save(figure, path)
