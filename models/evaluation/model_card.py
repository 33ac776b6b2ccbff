"""Model cards: a plain markdown page registered with every model version.

>>> from datetime import UTC, datetime
>>> from fti.models.evaluation.gates import GateResult
>>> info = ModelCardInfo(model="risk-xgb", version=1, created_at=datetime(2026, 1, 1, tzinfo=UTC),
...     metrics={"roc_auc": 0.9, "f1": 0.5, "precision": 0.6, "recall": 0.4, "accuracy": 0.95,
...              "rows": 100, "positives": 10,
...              "confusion_matrix": {"tn": 87, "fp": 3, "fn": 6, "tp": 4}},
...     gates=GateResult(passed=True))
>>> render_model_card(info).splitlines()[0]
'# Model card: risk-xgb v1'

Optional fields add sections: plots (written by `build_card_assets` next to the card and
embedded as images), bias slices, feature importance, signature, device, dependencies, lineage.
A card's ``task`` picks its metrics and plots: binary ROC and PR curves and a confusion
matrix, multiclass a class confusion matrix, regression a residual plot; `write_task_card`
writes the card of a declared model (`fti.features.project.Model`) with its plots.

>>> from dataclasses import replace
>>> card = render_model_card(replace(info, plots={"roc": "roc.png"}))
>>> "![ROC](roc.png)" in card
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata as package_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import ArrayLike

from fti.features.project.model import TASK_METRICS
from fti.models.evaluation.metrics import evaluate_binary, evaluate_multiclass
from fti.models.evaluation.slices import SliceReport

if TYPE_CHECKING:
    from fti.models.evaluation.importance import FeatureImportance

CARD_FILE = "model_card.md"
#: Tasks whose scores are class probabilities: a class confusion matrix, no ROC curves.
CLASS_TASKS = frozenset({"multiclass", "preference"})
_METRICS = ("roc_auc", "f1", "precision", "recall", "accuracy")
#: Metrics shown when present, besides `_METRICS` (PR AUC; regression metrics).
_EXTRA_METRICS = ("pr_auc", "mae", "mse", "rmse", "r2")
#: Plots `build_card_assets` may write: key -> (file name next to the card, image title).
PLOTS: dict[str, tuple[str, str]] = {
    "loss": ("loss.png", "Loss curve"),
    "roc": ("roc.png", "ROC"),
    "pr": ("pr.png", "Precision-recall"),
    "confusion": ("confusion.png", "Confusion matrix"),
    "slices": ("slices.png", "Slice metric"),
    "importance": ("importance.png", "Feature importance"),
}
#: Plots of the other tasks, by the same key → (file, title) scheme.
TASK_PLOTS: dict[str, tuple[str, str]] = {
    "residuals": ("residuals.png", "Residuals"),
}
_ALL_PLOTS = PLOTS | TASK_PLOTS
#: Packages whose installed versions a card lists (`installed_versions`).
DEPENDENCIES: tuple[str, ...] = tuple(
    "xgboost torch peft transformers pyarrow lancedb numpy".split()
)
DEPLOYMENT = (
    "Streaming: `flows/inference` scores every event with the champion, hot-swapped on "
    "`registry.events`; `flows/monitor` watches drift and label volume and requests retrains."
)
SLICED_LIMITATION = (
    "- Bias slices cover only the helper columns listed above; groups not recorded in the data "
    "(and slices with too few rows) are not measured."
)

INTENDED_USE = (
    "Scores events in real time (`flows/inference`) from the features of its view, as the "
    "feature engine computes them. A score >= the inference threshold marks an event as "
    "positive; it is a decision aid, not a verdict."
)
LIMITATIONS = (
    "- Trained on labels known at training time; patterns that appeared later are unseen "
    "until the monitor triggers a retrain.",
    "- The time split tests on the newest labels only; performance on older or rarer segments "
    "is not measured separately (no bias slices).",
    "- Labels arrive late and may be incomplete for the newest events; recent positives may be "
    "under-counted in the test split.",
    "- Scores are not calibrated probabilities (`scale_pos_weight` rebalances the classes).",
)
#: Limitations of a declared model's card (`write_task_card`).
TASK_LIMITATIONS = (
    "- Trained on labels known at training time; patterns that appeared later are unseen "
    "until a retrain.",
    "- The test split holds the newest labels only; performance on older or rarer segments "
    "is not measured separately.",
    "- Labels may arrive late and be incomplete for the newest events.",
)


class _Gates(Protocol):
    passed: bool
    reasons: list[str]


class CardSource(Protocol):
    """What a model card is written from; `ModelCardInfo` and registry metadata both fit."""

    model: str
    version: int
    created_at: datetime
    metrics: dict[str, Any]
    params: dict[str, Any]
    dataset: dict[str, Any]
    champion_metrics_on_same_test: dict[str, Any] | None
    champion_version: int | None
    gates: _Gates
    reason: str | None


@dataclass(frozen=True)
class ModelCardInfo:
    """Everything a card shows about a version, known before it is registered.

    Fields after ``features`` are optional; each adds a section or lines when given.
    ``plots`` maps a `PLOTS` key (or any name) to a PNG file name next to the card;
    ``signature`` and ``lineage`` take the registry's models (`Signature.of(...)`, `Lineage`)
    or the same as dicts; ``device`` a `fti.models.devices.describe_device` dict or a name;
    ``dependencies`` package -> version (`installed_versions`).
    """

    model: str
    version: int
    created_at: datetime
    metrics: dict[str, Any]
    gates: _Gates
    params: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    champion_metrics_on_same_test: dict[str, Any] | None = None
    champion_version: int | None = None
    reason: str | None = None
    features: Sequence[str] = ()
    plots: Mapping[str, str] = field(default_factory=dict)
    slices: SliceReport | None = None
    slice_metric: str = "recall"
    importance: FeatureImportance | None = None
    importance_top: int = 10
    signature: Any = None
    device: Mapping[str, Any] | str | None = None
    duration_s: float | None = None
    dependencies: Mapping[str, str] | None = None
    base_model_path: str | None = None
    base_model_sha256: str | None = None
    lineage: Any = None
    task: str = "binary"
    intended_use: str | None = None
    limitations: Sequence[str] | None = None


def installed_versions(packages: Sequence[str] = DEPENDENCIES) -> dict[str, str]:
    """Installed version of each package (``"not installed"`` when missing).

    >>> installed_versions(["numpy", "no-such-package-fti"])["no-such-package-fti"]
    'not installed'
    """
    versions = {}
    for name in packages:
        try:
            versions[name] = package_metadata.version(name)
        except package_metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def plan_card_plots(
    history: Mapping[str, Sequence[float]] | None,
    y_true: ArrayLike,
    slices: SliceReport | None = None,
    importance: FeatureImportance | None = None,
    task: str = "binary",
) -> dict[str, str]:
    """The plots `build_card_assets` draws for these inputs: key -> file name.

    Per ``task``: binary ROC and PR curves and the confusion matrix; multiclass the class
    confusion matrix; regression the residuals. Plots that cannot be drawn are left out: the
    loss curve without history, ROC and PR curves on a single-class test split, the slice
    chart without scored slices.

    >>> plan_card_plots({"val_logloss": [0.5, 0.4]}, [0, 1, 1])
    {'loss': 'loss.png', 'roc': 'roc.png', 'pr': 'pr.png', 'confusion': 'confusion.png'}
    """
    keys: list[str] = []
    if history and any(len(values) for values in history.values()):
        keys.append("loss")
    if task in CLASS_TASKS:
        keys.append("confusion")
    elif task == "regression":
        keys.append("residuals")
    else:
        y = np.asarray(y_true)
        if 0 < int(np.sum(y == 1)) < len(y):
            keys += ["roc", "pr"]
        keys.append("confusion")
    if slices is not None and slices.slices:
        keys.append("slices")
    if importance is not None and importance.scores:
        keys.append("importance")
    return {key: _ALL_PLOTS[key][0] for key in keys}


def build_card_assets(
    workdir: Path,
    history: Mapping[str, Sequence[float]] | None,
    y_true: ArrayLike,
    scores: ArrayLike,
    champion_scores: ArrayLike | None = None,
    slices: SliceReport | None = None,
    importance: FeatureImportance | None = None,
    threshold: float = 0.5,
    slice_metric: str = "recall",
    task: str = "binary",
    classes: Sequence[Any] | None = None,
) -> dict[str, str]:
    """Draw the card's PNG plots (`plan_card_plots`) into ``workdir``; return key -> file
    name. ``scores`` are probabilities in ``classes`` order for a multiclass task."""
    from fti.models.evaluation import plots  # matplotlib is imported only when plots are drawn

    workdir = Path(workdir)
    by_class = task in CLASS_TASKS
    y = np.asarray(y_true, dtype=object if by_class else None)
    made = plan_card_plots(history, y_true, slices, importance, task)
    for key, name in made.items():
        path = workdir / name
        if key == "loss":
            plots.plot_loss_curve(history or {}, path)
        elif key == "roc":
            plots.plot_roc_curve(y, scores, path, champion_scores)
        elif key == "pr":
            plots.plot_pr_curve(y, scores, path, champion_scores)
        elif key == "residuals":
            plots.plot_residuals(y, scores, path, champion_scores)
        elif key == "confusion" and by_class:
            metrics = evaluate_multiclass(y, scores, classes)
            plots.plot_class_confusion(metrics["confusion_matrix"], metrics["classes"], path)
        elif key == "confusion":
            matrix = evaluate_binary(y, scores, threshold)["confusion_matrix"]
            plots.plot_confusion_matrix(matrix, path, threshold)
        elif key == "slices" and slices is not None:
            plots.plot_slice_metric(slices, path, slice_metric)
        elif key == "importance" and importance is not None:
            plots.plot_importance(importance, path)
    return made


def write_model_card(path: Path, info: CardSource) -> Path:
    """Write the markdown card of ``info`` to ``path`` and return the path."""
    path = Path(path)
    path.write_text(render_model_card(info))
    return path


def render_model_card(info: CardSource) -> str:
    """The markdown text of a model card; optional fields missing on ``info`` are skipped."""
    plots = dict(getattr(info, "plots", None) or {})
    slices = getattr(info, "slices", None)
    task = getattr(info, "task", None) or info.params.get("task") or "binary"
    limitations = getattr(info, "limitations", None) or LIMITATIONS
    features = getattr(info, "features", None) or info.params.get("feature_columns") or ()
    sections = [
        f"# Model card: {info.model} v{info.version}\n\n"
        f"Created {info.created_at.isoformat()}; training triggered by: {info.reason or 'n/a'}.",
        f"## Intended use\n\n{getattr(info, 'intended_use', None) or INTENDED_USE}",
        _details(info),
        _training_data(info.dataset, task)
        + _lineage(getattr(info, "lineage", None))
        + _images(plots, "loss"),
        _metrics(info.metrics, info.champion_metrics_on_same_test, info.champion_version, task)
        + _images(plots, "roc", "pr", "residuals"),
        _confusion(info.metrics, task) + _images(plots, "confusion"),
        _slices(slices, getattr(info, "slice_metric", "recall"))
        + (_images(plots, "slices") if slices is not None else ""),
        _gates(info.gates),
        _importance(getattr(info, "importance", None), getattr(info, "importance_top", 10))
        + _images(plots, "importance"),
        _features(features, info.params),
        _deployment(getattr(info, "dependencies", None)),
        "## Limitations\n\n"
        + "\n".join(
            SLICED_LIMITATION if slices is not None and i == 1 else line
            for i, line in enumerate(limitations)
        ),
        _other_plots(plots),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _plain(value: Any) -> Any:
    """A pydantic model (registry metadata) as a dict; anything else as it is."""
    return value.model_dump() if hasattr(value, "model_dump") else value


def _images(plots: Mapping[str, str], *keys: str) -> str:
    shown = [f"![{_ALL_PLOTS[key][1]}]({plots[key]})" for key in keys if plots.get(key)]
    return "".join(f"\n\n{image}" for image in shown)


def _other_plots(plots: Mapping[str, str]) -> str:
    others = [f"![{name}]({file})" for name, file in plots.items() if name not in _ALL_PLOTS]
    return "## Plots\n\n" + "\n\n".join(others) if others else ""


def _details(info: CardSource) -> str:
    params = info.params
    device = _plain(getattr(info, "device", None)) or params.get("device_info")
    if isinstance(device, Mapping):
        device = (
            f"`{device.get('name')}` ("
            + ", ".join(f"{k}: {v}" for k, v in device.items() if k != "name")
            + ")"
        )
    duration = getattr(info, "duration_s", None) or params.get("fit_seconds")
    lines = [
        f"- Trainer: `{params['trainer']}`" if params.get("trainer") else "",
        f"- Device: {device}" if device else "",
        f"- Training duration: {duration:.1f} s" if duration else "",
        f"- Base model: `{info.base_model_path}`" if getattr(info, "base_model_path", None) else "",
        f"- Base model weights sha256: `{info.base_model_sha256}`"
        if getattr(info, "base_model_sha256", None)
        else "",
    ]
    text = "\n".join(line for line in lines if line)
    signature = _plain(getattr(info, "signature", None))
    if signature:
        rows = [f"| input | `{c['name']}` | {c['dtype']} |" for c in signature.get("inputs", [])]
        out = signature.get("output")
        rows += [f"| output | `{out['name']}` | {out['dtype']} |"] if out else []
        table = "\n".join(["| role | name | dtype |", "| --- | --- | --- |", *rows])
        text += f"\n\nSignature:\n\n{table}"
    return f"## Model details\n\n{text.strip()}" if text else ""


def _lineage(lineage: Any) -> str:
    lineage = _plain(lineage)
    if not lineage:
        return ""
    return "\n\nLineage:\n\n" + "\n".join(f"- {key}: {value}" for key, value in lineage.items())


def _slices(report: SliceReport | None, metric: str) -> str:
    if report is None:
        return ""
    return f"## Bias slices (test split)\n\n{report.to_markdown(metric)}"


def _importance(importance: FeatureImportance | None, top: int) -> str:
    if importance is None:
        return ""
    return (
        f"## Explainability\n\nFeature importance by {importance.method}; top "
        f"{min(top, len(importance.scores))} of {len(importance.scores)} features:\n\n"
        + importance.to_markdown(top)
    )


def _deployment(dependencies: Mapping[str, str] | None) -> str:
    if not dependencies:
        return ""
    listed = "\n".join(f"- {name}: {version}" for name, version in dependencies.items())
    return f"## Deployment\n\n{DEPLOYMENT}\n\nDependencies (installed at training):\n\n{listed}"


def _rate(positives: int, rows: int) -> str:
    return f"{positives / rows:.2%}" if rows else "n/a"


def _training_data(dataset: dict[str, Any], task: str = "binary") -> str:
    if task != "binary":
        return _task_training_data(dataset)
    lines = [
        "## Training data\n",
        f"- Dataset version: {dataset.get('version', 'n/a')} (view `{dataset.get('view', 'n/a')}`,"
        f" split `{dataset.get('split', 'n/a')}`, seed {dataset.get('seed', 'n/a')})",
        f"- Offline table versions: {dataset.get('table_versions', {})}",
        f"- Rows: {dataset.get('rows', 'n/a')} (newest {dataset.get('window_labels', 'n/a')} "
        f"labels; 0 = all), rows sha256 `{dataset.get('rows_sha256', 'n/a')}`",
        "",
        "| split | rows | positives | positive rate | label time from | to |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for name, stats in dataset.get("splits", {}).items():
        rows, positives = stats["rows"], stats["positives"]
        lines.append(
            f"| {name} | {rows} | {positives} | {_rate(positives, rows)} | "
            f"{stats.get('label_time_min')} | {stats.get('label_time_max')} |"
        )
    return "\n".join(lines)


def _task_training_data(dataset: dict[str, Any]) -> str:
    lines = [
        "## Training data\n",
        f"- Dataset version: {dataset.get('version', 'n/a')} (view `{dataset.get('view', 'n/a')}`,"
        f" split `{dataset.get('split', 'n/a')}`, seed {dataset.get('seed', 'n/a')})",
        f"- Offline table versions: {dataset.get('table_versions', {})}",
        f"- Rows: {dataset.get('rows', 'n/a')}, rows sha256 `{dataset.get('rows_sha256', 'n/a')}`",
        "",
        "| split | rows | label time from | to |",
        "| --- | ---: | --- | --- |",
    ]
    for name, stats in dataset.get("splits", {}).items():
        lines.append(f"| {name} | {stats['rows']} | {stats.get('label_time_min')} | "
                     f"{stats.get('label_time_max')} |")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _metrics(
    metrics: dict[str, Any], champion: dict[str, Any] | None, champion_version: int | None,
    task: str = "binary",
) -> str:
    rows, positives = metrics.get("rows", 0), metrics.get("positives", 0)
    if task == "binary":
        names = (*_METRICS[:1], *_EXTRA_METRICS, *_METRICS[1:], "log_loss", "brier", "ece")
        names = tuple(n for n in names if n in _METRICS or n in metrics) if metrics else _METRICS
        header = (
            f"## Metrics on the test split\n\n{rows} rows, {positives} positive "
            f"({_rate(positives, rows)}), threshold {metrics.get('threshold', 0.5)}.\n"
        )
    else:
        names = tuple(TASK_METRICS.get(task, ())) + tuple(
            n for n in ("mse", "majority_accuracy") if n in metrics)
        header = f"## Metrics on the test split ({task})\n\n{rows} rows.{_baseline(metrics)}\n"
    if champion is None:
        table = ["| metric | candidate |", "| --- | ---: |"]
        table += [f"| {name} | {_fmt(metrics.get(name))} |" for name in names]
        return header + "\n" + "\n".join(table) + "\n\nNo champion to compare with."
    table = [
        f"| metric | candidate | champion v{champion_version} | difference |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in names:
        ours, theirs = metrics.get(name), champion.get(name)
        both = isinstance(ours, float) and isinstance(theirs, float)
        diff = f"{ours - theirs:+.4f}" if both else "n/a"
        table.append(f"| {name} | {_fmt(ours)} | {_fmt(theirs)} | {diff} |")
    note = "\n\nBoth models were scored on the same test split."
    return header + "\n" + "\n".join(table) + note


def _confusion(metrics: dict[str, Any], task: str = "binary") -> str:
    if task == "regression":
        return ""
    if task != "binary":
        return _class_confusion(metrics)
    cm = metrics.get("confusion_matrix", {})
    return (
        "## Confusion matrix (test)\n\n"
        "| | predicted 0 | predicted 1 |\n| --- | ---: | ---: |\n"
        f"| actual 0 | {cm.get('tn', 'n/a')} | {cm.get('fp', 'n/a')} |\n"
        f"| actual 1 | {cm.get('fn', 'n/a')} | {cm.get('tp', 'n/a')} |"
    )


def _baseline(metrics: dict[str, Any]) -> str:
    """The sentence comparing accuracy with always predicting the majority class."""
    if "majority_accuracy" not in metrics:
        return ""
    return (f" Accuracy {metrics['accuracy']:.4f} against {metrics['majority_accuracy']:.4f} "
            "for always predicting the most frequent outcome: a margin of "
            f"{metrics['margin_over_majority']:+.4f} over the majority baseline.")


def _class_confusion(metrics: dict[str, Any]) -> str:
    cm, classes = metrics.get("confusion_matrix"), metrics.get("classes")
    if not isinstance(cm, list) or not classes:
        return ""
    columns = [("f1", metrics.get("per_class", {})), ("recall", metrics.get("per_class_recall")),
               ("precision", metrics.get("per_class_precision"))]
    shown = [(name, values) for name, values in columns if values]
    head = ("| actual \\ predicted | " + " | ".join(f"`{c}`" for c in classes) + " | "
            + " | ".join(name for name, _ in shown) + " |")
    lines = ["## Confusion matrix (test)\n", "Rows: actual, columns: predicted.\n", head,
             "| --- | " + " | ".join(["---:"] * (len(classes) + len(shown))) + " |"]
    for value, row in zip(classes, cm, strict=True):
        per_class = [values.get(str(value)) for _, values in shown]
        lines.append(f"| `{value}` | " + " | ".join(str(n) for n in row) + " | "
                     + " | ".join(_fmt(v) if v is not None else "n/a" for v in per_class) + " |")
    return "\n".join(lines)


def _gates(gates: _Gates) -> str:
    if gates.passed:
        return "## Promotion gates\n\nPassed: this version was promoted to champion."
    reasons = "\n".join(f"- {reason}" for reason in gates.reasons)
    return f"## Promotion gates\n\nFailed; this version was not promoted:\n\n{reasons}"


def _features(features: Sequence[str], params: dict[str, Any]) -> str:
    names = "\n".join(f"{i}. `{name}`" for i, name in enumerate(features, start=1))
    shown = "\n".join(
        f"- {key}: {value}" for key, value in sorted(params.items()) if key != "feature_columns"
    )
    return f"## Features (model input order)\n\n{names}\n\n## Parameters\n\n{shown or '- n/a'}"


def write_task_card(
    path: Path,
    *,
    model: Any,
    version: int,
    created_at: datetime,
    params: dict[str, Any],
    metrics: dict[str, Any],
    gates: _Gates,
    y_true: ArrayLike,
    scores: ArrayLike,
    champion_version: int | None = None,
    champion_metrics: dict[str, Any] | None = None,
    champion_scores: ArrayLike | None = None,
    lineage: Any = None,
    reason: str | None = None,
    dataset: dict[str, Any] | None = None,
    signature: Any = None,
    importance: FeatureImportance | None = None,
    slices: SliceReport | None = None,
    dependencies: Mapping[str, str] | None = None,
    plots_in: str | None = None,
) -> Path:
    """Write the model card of a declared model (`fti.features.project.Model`: its name,
    task, features, label, threshold and description) to ``path``, with the task's plots
    (`build_card_assets`, from ``y_true`` and ``scores`` of the test split) next to it.

    With ``plots_in`` (a folder relative to the card, e.g. "report") the card links the
    plots there and draws none: the caller draws them later (`draw_task_plots`), so the
    version can be registered and served first.

    ``params`` are the run's parameters (``history``, ``classes``, ``device_info``,
    ``fit_seconds``, ``trainer``, ...).
    """
    path = Path(path)
    task = model.task
    if plots_in is None:
        plots = draw_task_plots(path.parent, model, params, metrics, y_true, scores,
                                champion_scores, slices, importance)
    else:
        plots = {key: f"{plots_in}/{name}" for key, name in plan_card_plots(
            params.get("history"), y_true, slices, importance, task).items()}
    history = params.get("history") or {}
    rounds = max((len(v) for v in history.values()), default=0)
    shown = {k: v for k, v in params.items() if k != "history"}
    if history:
        shown["history"] = f"{rounds} rounds/epochs, last " + str(
            {name: round(values[-1], 5) for name, values in history.items() if values})
    label = model.label_column()
    intended = model.description or (
        f"Predicts `{label}` ({task}) for events of view `{model.view.name}` from the "
        f"features listed below; it is served by the inference flow of the project."
    )
    info = ModelCardInfo(
        model=model.name, version=version, created_at=created_at, metrics=metrics, gates=gates,
        params=shown, dataset=dataset or {}, champion_metrics_on_same_test=champion_metrics,
        champion_version=champion_version, reason=reason, features=model.feature_columns(),
        plots=plots, slices=slices, importance=importance, signature=signature,
        device=params.get("device_info"), duration_s=params.get("fit_seconds"),
        dependencies=installed_versions() if dependencies is None else dependencies,
        lineage=lineage, task=task, intended_use=intended, limitations=TASK_LIMITATIONS,
    )
    return write_model_card(path, info)


def draw_task_plots(
    workdir: Path, model: Any, params: dict[str, Any], metrics: dict[str, Any],
    y_true: ArrayLike, scores: ArrayLike, champion_scores: ArrayLike | None = None,
    slices: SliceReport | None = None, importance: FeatureImportance | None = None,
) -> dict[str, str]:
    """Draw the plots of a declared model's card into ``workdir`` (`build_card_assets` with
    the model's task, threshold and classes); key -> file name."""
    classes = params.get("classes") or metrics.get("classes")
    return build_card_assets(
        Path(workdir), params.get("history"), y_true, scores, champion_scores, slices,
        importance, model.threshold, task=model.task, classes=classes,
    )
