"""PNG plots of models/plots.py and the extended model card of models/model_card.py."""

from __future__ import annotations

import struct
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from fti.errors import FtiError
from fti.models.evaluation import plots
from fti.models.evaluation.gates import GateResult
from fti.models.evaluation.importance import FeatureImportance
from fti.models.evaluation.metrics import evaluate_binary
from fti.models.evaluation.model_card import (
    PLOTS,
    ModelCardInfo,
    build_card_assets,
    installed_versions,
    render_model_card,
    write_model_card,
)
from fti.models.evaluation.slices import evaluate_slices
from fti.models.registry.metadata import Lineage, Signature

MIN_PNG_BYTES = 5_000


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking the magic bytes."""
    data = path.read_bytes()
    assert data[:8] == plots.PNG_MAGIC, f"{path.name} is not a PNG"
    assert len(data) > MIN_PNG_BYTES, f"{path.name} is only {len(data)} bytes"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def scored() -> dict:
    rng = np.random.default_rng(7)
    y = (rng.random(600) < 0.15).astype(int)
    scores = np.clip(0.45 * y + rng.random(600) * 0.6, 0, 1)
    champion = np.clip(0.25 * y + rng.random(600) * 0.7, 0, 1)
    country = rng.choice(["DE", "FR", "IT"], 600)
    report = evaluate_slices({"country": country}, y, scores, ["country"], 0.5, 30)
    importance = FeatureImportance("SHAP (test)", (("amount", 0.9), ("hour_of_day", 0.2)))
    history = {"train_logloss": [0.6, 0.4, 0.3, 0.25], "val_logloss": [0.62, 0.45, 0.38, 0.4]}
    return dict(y=y, scores=scores, champion=champion, slices=report, importance=importance,
                history=history)


def test_every_plot_is_a_png_of_fixed_size(tmp_path: Path, scored: dict) -> None:
    y, s = scored["y"], scored["scores"]
    written = [
        plots.plot_loss_curve(scored["history"], tmp_path / "loss.png"),
        plots.plot_roc_curve(y, s, tmp_path / "roc.png", scored["champion"]),
        plots.plot_pr_curve(y, s, tmp_path / "pr.png"),
        plots.plot_confusion_matrix(evaluate_binary(y, s)["confusion_matrix"], tmp_path / "cm.png"),
        plots.plot_slice_metric(scored["slices"], tmp_path / "slices.png", "f1"),
        plots.plot_importance(scored["importance"], tmp_path / "importance.png"),
    ]
    sizes = {path.name: _png_size(path) for path in written}
    assert sizes["roc.png"] == sizes["pr.png"] == sizes["loss.png"] == (640, 480)
    assert sizes["cm.png"] == (520, 440)


def test_same_inputs_give_the_same_image(tmp_path: Path, scored: dict) -> None:
    first = plots.plot_roc_curve(scored["y"], scored["scores"], tmp_path / "a.png")
    second = plots.plot_roc_curve(scored["y"], scored["scores"], tmp_path / "b.png")
    assert first.read_bytes() == second.read_bytes()


def test_plots_refuse_what_they_cannot_draw(tmp_path: Path) -> None:
    with pytest.raises(FtiError, match="history is empty"):
        plots.plot_loss_curve({"val_logloss": []}, tmp_path / "x.png")
    with pytest.raises(FtiError, match="needs tn, fp, fn, tp"):
        plots.plot_confusion_matrix({"tp": 1}, tmp_path / "x.png")
    empty = evaluate_slices({"c": ["a"]}, [1], [0.9])
    with pytest.raises(FtiError, match="no slice has >= 30 rows"):
        plots.plot_slice_metric(empty, tmp_path / "x.png")


def test_build_card_assets_writes_every_plot_next_to_the_card(tmp_path: Path, scored: dict) -> None:
    made = build_card_assets(
        tmp_path, scored["history"], scored["y"], scored["scores"], scored["champion"],
        scored["slices"], scored["importance"],
    )
    assert made == {key: file for key, (file, _) in PLOTS.items()}
    for file in made.values():
        _png_size(tmp_path / file)


def test_build_card_assets_skips_plots_without_data(tmp_path: Path) -> None:
    made = build_card_assets(tmp_path, {}, [0, 0, 0], [0.1, 0.7, 0.2])
    assert made == {"confusion": "confusion.png"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion.png"]


def _old_style() -> ModelCardInfo:
    metrics = evaluate_binary([0, 0, 1, 1, 0, 1], [0.1, 0.6, 0.7, 0.9, 0.2, 0.3])
    return ModelCardInfo(
        model="fraud-xgb", version=3, created_at=datetime(2026, 1, 2, tzinfo=UTC),
        metrics=metrics, gates=GateResult(passed=True), params={"max_depth": 4},
        dataset={"version": 5, "view": "fraud_v1", "rows": 6}, reason="drift",
    )


def test_old_style_card_still_renders() -> None:
    card = render_model_card(_old_style())
    assert card.startswith("# Model card: fraud-xgb v3\n")
    for heading in ("## Intended use", "## Training data", "## Metrics on the test split",
                    "## Confusion matrix (test)", "## Promotion gates", "## Limitations"):
        assert heading in card
    assert "| pr_auc |" in card  # evaluate_binary() reports it now
    assert "![" not in card and "## Bias slices" not in card and "## Explainability" not in card
    assert "(no bias slices)" in card


def test_card_from_registry_style_metadata_without_new_fields() -> None:
    info = _old_style()
    source = SimpleNamespace(**{name: getattr(info, name) for name in (
        "model", "version", "created_at", "metrics", "params", "dataset", "gates", "reason",
        "champion_metrics_on_same_test", "champion_version")})
    source.signature = Signature.of(["amount"], "float32", output=("score", "float32"))
    source.lineage = Lineage(feature_view="fraud_v1", dataset_version=5, table_versions={"t": 2})
    source.device = "cpu"
    card = render_model_card(source)
    assert "| input | `amount` | float32 |" in card and "| output | `score` | float32 |" in card
    assert "- feature_view: fraud_v1" in card and "- Device: cpu" in card


def test_full_card_has_sections_and_image_links(tmp_path: Path, scored: dict) -> None:
    made = build_card_assets(
        tmp_path, scored["history"], scored["y"], scored["scores"], scored["champion"],
        scored["slices"], scored["importance"],
    )
    info = replace(
        _old_style(),
        metrics=evaluate_binary(scored["y"], scored["scores"]),
        champion_metrics_on_same_test=evaluate_binary(scored["y"], scored["champion"]),
        champion_version=2,
        plots=made | {"calibration": "calibration.png"},
        slices=scored["slices"],
        importance=scored["importance"],
        signature={"inputs": [{"name": "amount", "dtype": "float32"}],
                   "output": {"name": "fraud_score", "dtype": "float32"}},
        device={"name": "cpu", "cpu_count": 2, "precision": "fp32"},
        duration_s=3.25,
        dependencies=installed_versions(),
        base_model_path="/models/minilm",
        base_model_sha256="ab" * 32,
        lineage={"feature_view": "fraud_v1", "dataset_version": 5, "tables": {"labels": 3}},
    )
    card = write_model_card(tmp_path / "model_card.md", info).read_text()
    for heading in ("## Model details", "## Bias slices (test split)", "## Explainability",
                    "## Deployment", "## Plots"):
        assert heading in card
    for image in ("![ROC](roc.png)", "![Precision-recall](pr.png)", "![Loss curve](loss.png)",
                  "![Confusion matrix](confusion.png)", "![Slice metric](slices.png)",
                  "![Feature importance](importance.png)", "![calibration](calibration.png)"):
        assert image in card
    for file in made.values():
        assert (tmp_path / file).exists()
    assert "| pr_auc |" in card and "champion v2" in card
    assert "Largest recall gap" in card and "| country | DE |" in card
    assert "| 1 | `amount` |" in card and "SHAP (test)" in card
    assert "- Device: `cpu` (cpu_count: 2, precision: fp32)" in card
    assert "- Training duration: 3.2 s" in card and f"`{'ab' * 32}`" in card
    assert f"- xgboost: {installed_versions(['xgboost'])['xgboost']}" in card
    assert "- dataset_version: 5" in card
    assert "(no bias slices)" not in card and "Bias slices cover only" in card


def test_installed_versions() -> None:
    versions = installed_versions()
    assert set(versions) >= {"xgboost", "torch", "peft", "transformers", "pyarrow", "lancedb"}
    assert versions["xgboost"][0].isdigit()
