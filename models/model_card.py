"""Model cards: a plain markdown page registered with every model version.

>>> from datetime import UTC, datetime
>>> from models.gates import GateResult
>>> info = ModelCardInfo(model="fraud-xgb", version=1, created_at=datetime(2026, 1, 1, tzinfo=UTC),
...     metrics={"roc_auc": 0.9, "f1": 0.5, "precision": 0.6, "recall": 0.4, "accuracy": 0.95,
...              "rows": 100, "positives": 10,
...              "confusion_matrix": {"tn": 87, "fp": 3, "fn": 6, "tp": 4}},
...     gates=GateResult(passed=True))
>>> render_model_card(info).splitlines()[0]
'# Model card: fraud-xgb v1'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from features.definitions import FEATURE_COLUMNS

CARD_FILE = "model_card.md"
_METRICS = ("roc_auc", "f1", "precision", "recall", "accuracy")

INTENDED_USE = (
    "Scores card transactions for fraud risk in real time (`flows/inference`), from the "
    "features of `features/definitions.py` as computed by the feature flow. A score >= the "
    "inference threshold marks a transaction for review; it is a decision aid, not a verdict."
)
LIMITATIONS = (
    "- Trained on labels known at training time; fraud patterns that appeared later are unseen "
    "until the monitor triggers a retrain.",
    "- The time split tests on the newest labels only; performance on older or rarer segments "
    "(countries, channels, merchants) is not measured separately yet (no bias slices).",
    "- Labels arrive late and may be incomplete for the newest transactions; recent fraud may be "
    "under-counted in the test split.",
    "- Scores are not calibrated probabilities (`scale_pos_weight` rebalances the classes).",
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
    """Everything a card shows about a version, known before it is registered."""

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
    features: Sequence[str] = FEATURE_COLUMNS


def write_model_card(path: Path, info: CardSource) -> Path:
    """Write the markdown card of ``info`` to ``path`` and return the path."""
    path = Path(path)
    path.write_text(render_model_card(info))
    return path


def render_model_card(info: CardSource) -> str:
    """The markdown text of a model card."""
    sections = [
        f"# Model card: {info.model} v{info.version}\n\n"
        f"Created {info.created_at.isoformat()}; training triggered by: {info.reason or 'n/a'}.",
        f"## Intended use\n\n{INTENDED_USE}",
        _training_data(info.dataset),
        _metrics(info.metrics, info.champion_metrics_on_same_test, info.champion_version),
        _confusion(info.metrics),
        _gates(info.gates),
        _features(getattr(info, "features", FEATURE_COLUMNS), info.params),
        "## Limitations\n\n" + "\n".join(LIMITATIONS),
    ]
    return "\n\n".join(sections) + "\n"


def _rate(positives: int, rows: int) -> str:
    return f"{positives / rows:.2%}" if rows else "n/a"


def _training_data(dataset: dict[str, Any]) -> str:
    lines = [
        "## Training data\n",
        f"- Dataset version: {dataset.get('version', 'n/a')} (view `{dataset.get('view', 'n/a')}`,"
        f" split `{dataset.get('split', 'n/a')}`, seed {dataset.get('seed', 'n/a')})",
        f"- Offline table versions: {dataset.get('table_versions', {})}",
        f"- Rows: {dataset.get('rows', 'n/a')} (newest {dataset.get('window_labels', 'n/a')} "
        f"labels; 0 = all), rows sha256 `{dataset.get('rows_sha256', 'n/a')}`",
        "",
        "| split | rows | fraud | fraud rate | label time from | to |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for name, stats in dataset.get("splits", {}).items():
        rows, positives = stats["rows"], stats["positives"]
        lines.append(
            f"| {name} | {rows} | {positives} | {_rate(positives, rows)} | "
            f"{stats.get('label_time_min')} | {stats.get('label_time_max')} |"
        )
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _metrics(
    metrics: dict[str, Any], champion: dict[str, Any] | None, champion_version: int | None
) -> str:
    rows, positives = metrics.get("rows", 0), metrics.get("positives", 0)
    header = (
        f"## Metrics on the test split\n\n{rows} rows, {positives} fraud "
        f"({_rate(positives, rows)}), threshold {metrics.get('threshold', 0.5)}.\n"
    )
    if champion is None:
        table = ["| metric | candidate |", "| --- | ---: |"]
        table += [f"| {name} | {_fmt(metrics.get(name))} |" for name in _METRICS]
        return header + "\n" + "\n".join(table) + "\n\nNo champion to compare with."
    table = [
        f"| metric | candidate | champion v{champion_version} | difference |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in _METRICS:
        ours, theirs = metrics.get(name), champion.get(name)
        both = isinstance(ours, float) and isinstance(theirs, float)
        diff = f"{ours - theirs:+.4f}" if both else "n/a"
        table.append(f"| {name} | {_fmt(ours)} | {_fmt(theirs)} | {diff} |")
    note = "\n\nBoth models were scored on the same test split."
    return header + "\n" + "\n".join(table) + note


def _confusion(metrics: dict[str, Any]) -> str:
    cm = metrics.get("confusion_matrix", {})
    return (
        "## Confusion matrix (test)\n\n"
        "| | predicted legit | predicted fraud |\n| --- | ---: | ---: |\n"
        f"| actual legit | {cm.get('tn', 'n/a')} | {cm.get('fp', 'n/a')} |\n"
        f"| actual fraud | {cm.get('fn', 'n/a')} | {cm.get('tp', 'n/a')} |"
    )


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
