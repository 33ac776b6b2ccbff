"""Metrics, gates, importance, plots and cards per task (binary, multiclass, preference,
regression)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import sklearn.metrics as skm
import xgboost as xgb

from fti.features.errors import DefinitionError
from fti.features.project import FeatureGroup, FeatureView, Field, Label, Model, Stream, agg
from fti.features.project.model import TASK_METRICS
from fti.models.errors import EvaluationError
from fti.models.evaluation import plots
from fti.models.evaluation.gates import GateResult, check_metric_gates, check_task_gates
from fti.models.evaluation.importance import feature_importance
from fti.models.evaluation.metrics import (
    evaluate,
    evaluate_binary,
    evaluate_multiclass,
    expected_calibration_error,
)
from fti.models.evaluation.model_card import build_card_assets, write_task_card

CLASSES = ("cat", "dog", "eel")


def _multiclass(seed: int = 0, rows: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.choice(CLASSES, rows)
    logits = rng.normal(size=(rows, 3)) + 1.5 * (y[:, None] == np.array(CLASSES))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y.astype(object), p


@pytest.mark.parametrize("task", ["binary", "multiclass", "preference", "regression"])
def test_evaluate_reports_every_gate_metric_of_the_task(task: str) -> None:
    rng = np.random.default_rng(1)
    if task == "binary":
        y, s, classes = rng.integers(0, 2, 50), rng.random(50), None
    elif task in ("multiclass", "preference"):
        (y, s), classes = _multiclass(rows=50), CLASSES
    else:
        y, s, classes = rng.normal(size=50), rng.normal(size=50), None
    metrics = evaluate(task, y, s, 0.5, classes)
    assert set(TASK_METRICS[task]) | {"rows"} <= set(metrics) and metrics["rows"] == 50
    assert all(isinstance(metrics[name], float) for name in TASK_METRICS[task])


def test_binary_probability_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(2)
    y = (rng.random(400) < 0.3).astype(int)
    p = np.clip(0.3 * y + rng.random(400) * 0.7, 0, 1)
    m = evaluate_binary(y, p)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p), rel=1e-9)
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, p), rel=1e-9)
    assert 0.0 <= m["ece"] <= 1.0
    perfect = expected_calibration_error(np.array([0, 0, 1, 1]), np.array([0.0, 0.0, 1.0, 1.0]))
    assert perfect == 0.0
    assert evaluate_binary([0, 1], [0.0, 1.0])["log_loss"] < 1e-12  # clipped, finite


def test_multiclass_metrics_match_scikit_learn() -> None:
    y, p = _multiclass()
    m = evaluate_multiclass(y, p, CLASSES)
    predicted = np.array(CLASSES)[np.argmax(p, axis=1)]
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y.astype(str), predicted))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y.astype(str), predicted, average="macro"))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y.astype(str), p, labels=list(CLASSES)))
    per_class = skm.f1_score(y.astype(str), predicted, average=None, labels=list(CLASSES))
    assert [m["per_class"][c] for c in CLASSES] == pytest.approx(list(per_class))
    assert m["confusion_matrix"] == skm.confusion_matrix(
        y.astype(str), predicted, labels=list(CLASSES)).tolist()
    assert m["classes"] == list(CLASSES) and "per_class" not in TASK_METRICS["multiclass"]


def test_multiclass_refuses_what_it_cannot_score() -> None:
    with pytest.raises(EvaluationError, match="labels 'fox' are not among the classes"):
        evaluate_multiclass(["fox"], [[0.2, 0.3, 0.5]], CLASSES)
    with pytest.raises(EvaluationError, match="must be \\(rows, classes\\)"):
        evaluate_multiclass(["cat", "dog"], [0.2, 0.8], CLASSES)
    with pytest.raises(EvaluationError, match="2 classes"):
        evaluate_multiclass(["cat"], [[0.2, 0.3, 0.5]], ["cat", "dog"])
    assert evaluate("multiclass", [0, 2], [[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]])["accuracy"] == 1.0
    with pytest.raises(EvaluationError, match="no metrics for task 'ranking'"):
        evaluate("ranking", [0], [[1.0]])


def test_pairwise_outcomes_are_scored_against_the_majority_baseline() -> None:
    outcomes = ["A", "B", "tie"]
    y = ["A", "A", "A", "B", "tie", "tie"]
    p = [[.7, .2, .1], [.6, .3, .1], [.2, .5, .3], [.1, .8, .1], [.3, .3, .4], [.5, .1, .4]]
    m = evaluate("preference", y, p, classes=outcomes)
    assert m["accuracy"] == 4 / 6 and m["majority_accuracy"] == 3 / 6
    assert m["margin_over_majority"] == 4 / 6 - 3 / 6
    assert m["per_class_recall"] == {"A": 2 / 3, "B": 1.0, "tie": 0.5}
    assert m["per_class_precision"] == {"A": 2 / 3, "B": 0.5, "tie": 1.0}
    assert m["min_class_recall"] == 0.5 and m["support"] == {"A": 3, "B": 1, "tie": 2}
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 0], [1, 0, 1]]
    never_tie = evaluate("preference", y, [[.6, .3, .1]] * 6, classes=outcomes)
    assert never_tie["min_class_recall"] == 0.0 and never_tie["margin_over_majority"] == 0.0


def test_metric_gates_take_their_direction_from_the_metric() -> None:
    failed = check_metric_gates("regression", {"mae": 5.0, "rmse": 9.0, "r2": 0.8},
                                {"mae": 7.2, "rmse": 8.0, "r2": 0.5})
    assert failed.reasons == ["mae 7.2 > 5.0 (gate max)", "r2 0.5 < 0.8 (gate min)"]
    binary = check_metric_gates("binary", {"roc_auc": 0.7, "ece": 0.1},
                                {"roc_auc": 0.65, "ece": 0.2})
    assert binary.reasons == ["roc_auc 0.65 < 0.7 (gate min)", "ece 0.2 > 0.1 (gate max)"]
    assert check_metric_gates("multiclass", {"macro_f1": 0.5}, {"macro_f1": 0.6}).passed


def test_metric_gates_compare_the_primary_metric_with_the_champion() -> None:
    worse = check_metric_gates("regression", {}, {"mae": 5.6}, {"mae": 5.0}, 0.5)
    assert worse.reasons == ["mae 5.6 > champion 5 + max regression 0.5 = 5.5 (same test split)"]
    assert check_metric_gates("regression", {}, {"mae": 5.4}, {"mae": 5.0}, 0.5).passed
    assert check_metric_gates("multiclass", {}, {"macro_f1": 0.7}, {"macro_f1": 0.8}, 0.05
                              ).reasons[0].startswith("macro_f1 0.7 < champion 0.8")
    assert check_metric_gates("binary", {}, {"roc_auc": 0.8}, {"roc_auc": 0.81}, 0.02).passed
    assert check_metric_gates("binary", {}, {"roc_auc": 0.5}, None, 0.0).passed  # no champion


def test_metric_gates_fail_on_what_they_cannot_check() -> None:
    result = check_metric_gates("regression", {"roc_auc": 0.7, "r2": 0.1}, {"mae": 1.0})
    assert result.reasons == ["gate roc_auc is not a regression metric (mae, rmse, r2)",
                              "r2 is missing from the candidate's metrics"]
    single = check_metric_gates("binary", {}, {"roc_auc": 0.5, "single_class": True, "rows": 4,
                                               "positives": 0})
    assert not single.passed and "single class" in single.reasons[0]


def test_task_gates_read_a_declared_model() -> None:
    model = SimpleNamespace(task="regression", gates={"mae": 2.0}, max_regression=0.1,
                            max_slice_gap=None)
    assert check_task_gates(model, {"mae": 1.5}, {"mae": 1.3}).reasons == [
        "mae 1.5 > champion 1.3 + max regression 0.1 = 1.4 (same test split)"]
    sliced = SimpleNamespace(task="regression", gates={}, max_regression=0.1, max_slice_gap=0.2)
    assert "no slice report was given" in check_task_gates(sliced, {"mae": 1.0}).reasons[0]


def test_importance_per_task() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 3)).astype(np.float32)
    y = np.array(CLASSES, dtype=object)[np.digitize(X[:, 0], [-0.5, 0.5])]
    index = {c: i for i, c in enumerate(CLASSES)}

    class ByFirst:
        def predict(self, X: np.ndarray) -> np.ndarray:
            onehot = np.eye(3)[np.digitize(X[:, 0], [-0.5, 0.5])]
            return 0.8 * onehot + 0.2 / 3

    ranked = feature_importance(ByFirst(), X, y, ["a", "b", "c"], "multiclass", CLASSES)
    assert ranked.top(1)[0][0] == "a" and ranked.method.startswith("permutation")
    booster = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2},
                        xgb.DMatrix(X, np.array([index[c] for c in y])), 10)
    shap = feature_importance(booster, X, y, ["a", "b", "c"], "multiclass", CLASSES)
    assert shap.top(1)[0][0] == "a" and "over classes" in shap.method
    target = 3.0 * X[:, 1] + rng.normal(0, 0.1, 300)
    regressor = xgb.train({"max_depth": 2}, xgb.DMatrix(X, target), 20)
    assert feature_importance(regressor, X, target, ["a", "b", "c"], "regression").top(1)[0][0] \
        == "b"


def test_card_plots_per_task(tmp_path: Path) -> None:
    y, p = _multiclass()
    made = build_card_assets(tmp_path / "mc", {"val_mlogloss": [1.0, 0.8]}, y, p,
                             task="multiclass", classes=CLASSES)
    assert made == {"loss": "loss.png", "confusion": "confusion.png"}
    rng = np.random.default_rng(4)
    target = rng.normal(size=100)
    made = build_card_assets(tmp_path / "reg", None, target, target + rng.normal(0, 0.1, 100),
                             target, task="regression")
    assert made == {"residuals": "residuals.png"}
    for png in (tmp_path / "mc" / "confusion.png", tmp_path / "reg" / "residuals.png"):
        assert png.read_bytes()[:8] == plots.PNG_MAGIC
    with pytest.raises(EvaluationError, match="for 2 classes"):
        plots.plot_class_confusion([[1]], ["a", "b"], tmp_path / "x.png")


def _model(task: str) -> Model:
    s = Stream("s", topic="s", key="k", id="i", event_time="ts",
               fields=[Field("i"), Field("k"), Field("x", "float"), Field("y", "float"),
                       Field("ts", "timestamp")])
    g = FeatureGroup("g", entity="k", stream=s, aggregations=[agg.mean("x", window="1h")])
    v = FeatureView("v", Label("y", s, value="y"), [g])
    return Model("m", view=v, task=task, trainer="mlp", gates={"mae": 2.0})


def test_write_task_card_shows_the_task(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(size=80)
    scores = y + rng.normal(0, 0.3, 80)
    metrics = evaluate("regression", y, scores)
    card = write_task_card(
        tmp_path / "model_card.md", model=_model("regression"), version=2,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        params={"trainer": "mlp", "history": {"val_loss": [0.5, 0.4]}, "fit_seconds": 1.5},
        metrics=metrics, gates=GateResult(False, ["mae 2.5 > 2.0 (gate max)"]),
        y_true=y, scores=scores, reason="manual", dependencies={},
    ).read_text()
    assert card.startswith("# Model card: m v2")
    assert "## Metrics on the test split (regression)" in card and "| mae |" in card
    assert "![Residuals](residuals.png)" in card and "![Loss curve](loss.png)" in card
    assert "- mae 2.5 > 2.0 (gate max)" in card and "1. `g__x_mean_1h`" in card
    assert "fraud" not in card.lower()
    assert (tmp_path / "residuals.png").is_file() and (tmp_path / "loss.png").is_file()


def test_a_pairwise_card_states_the_margin_over_the_majority_and_the_confusion(
    tmp_path: Path
) -> None:
    s = Stream("p", topic="p", key="k", id="k", event_time="ts",
               fields=[Field("k"), Field("q"), Field("a"), Field("b"),
                       Field("w", values=["A", "B", "tie"]), Field("ts", "timestamp")])
    g = FeatureGroup("g", entity="k", stream=s, features=["q", "a", "b"])
    model = Model("judge", view=FeatureView("v", Label("w", s, value="w"), [g]),
                  task="preference", trainer="lora", gates={"margin_over_majority": 0.2})
    assert model.feature_columns() == ["g__q", "g__a", "g__b"] and model.reads_text()
    y = np.array(["A", "A", "B", "tie", "tie", "tie"], dtype=object)
    p = np.array([[.8, .1, .1], [.1, .8, .1], [.1, .8, .1], [.1, .1, .8], [.2, .2, .6],
                  [.5, .2, .3]])
    metrics = evaluate("preference", y, p, classes=["A", "B", "tie"])
    card = write_task_card(
        tmp_path / "model_card.md", model=model, version=1,
        created_at=datetime(2026, 1, 1, tzinfo=UTC), params={"trainer": "lora"},
        metrics=metrics, gates=GateResult(True), y_true=y, scores=p, dependencies={},
    ).read_text()
    assert ("Accuracy 0.6667 against 0.5000 for always predicting the most frequent outcome: "
            "a margin of +0.1667 over the majority baseline.") in card
    assert "| actual \\ predicted | `A` | `B` | `tie` | f1 | recall | precision |" in card
    assert "| `tie` | 1 | 0 | 2 | 0.8000 | 0.6667 | 1.0000 |" in card
    assert "| majority_accuracy | 0.5000 |" in card and "| min_class_recall | 0.5000 |" in card
    assert (tmp_path / "confusion.png").is_file()
    with pytest.raises(DefinitionError, match="feature g__q is not a number"):
        Model("m", view=model.view, task="preference", trainer="mlp", features=["g__q"])
