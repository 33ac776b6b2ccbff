"""SHAP and permutation importance of models/importance.py on data where only feature 0 matters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import xgboost as xgb

from fti.errors import FtiError
from fti.models.evaluation.importance import (
    feature_importance,
    permutation_importance,
    shap_contributions,
    shap_importance,
)
from fti.models.trainers.xgboost import LoadedXGBoost

NAMES = ["signal", "noise_a", "noise_b", "noise_c", "noise_d"]


def _data(seed: int = 0, rows: int = 800) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, len(NAMES))).astype(np.float32)
    y = (X[:, 0] > 0.2).astype(int)  # only feature 0 decides the label
    return X, y


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    X, y = _data()
    classifier = xgb.XGBClassifier(
        n_estimators=40, max_depth=3, learning_rate=0.3, random_state=1, n_jobs=2
    )
    classifier.fit(X, y)
    model = classifier.get_booster()
    model.feature_names = list(NAMES)
    return model


def test_shap_ranks_the_only_signal_first(booster: xgb.Booster) -> None:
    X, _ = _data(seed=1)
    importance = shap_importance(booster, X)
    assert importance.method.startswith("SHAP")
    ranked = importance.top(len(NAMES))
    assert ranked[0][0] == "signal"
    assert [name for name, _ in ranked] == [name for name, _ in importance.scores]
    values = [value for _, value in ranked]
    assert values == sorted(values, reverse=True)
    assert ranked[0][1] > 5 * max(value for _, value in ranked[1:])


def test_contributions_and_bias_sum_to_the_margin(booster: xgb.Booster) -> None:
    X, _ = _data(seed=2, rows=300)
    contributions = shap_contributions(booster, X)
    assert contributions.shape == (300, len(NAMES) + 1)
    margin = booster.predict(xgb.DMatrix(X, feature_names=NAMES), output_margin=True)
    np.testing.assert_allclose(contributions.sum(axis=1), margin, atol=1e-4)
    assert np.allclose(contributions[:, -1], contributions[0, -1])  # the bias is one constant


def test_shap_works_on_a_booster_without_names() -> None:
    X, y = _data()
    params = {"max_depth": 2, "objective": "binary:logistic", "nthread": 2}
    booster = xgb.train(params, xgb.DMatrix(X, y), 10)
    importance = shap_importance(booster, X)
    assert importance.top(1)[0][0] == "f0"
    assert shap_importance(booster, X, NAMES).top(1)[0][0] == "signal"


def test_feature_importance_picks_shap_for_xgboost(booster: xgb.Booster) -> None:
    X, y = _data(seed=3)
    loaded = feature_importance(LoadedXGBoost(booster), X, y, NAMES)
    assert loaded.method.startswith("SHAP") and loaded.top(1)[0][0] == "signal"
    assert feature_importance(booster, X, y).scores == loaded.scores


@dataclass(frozen=True)
class _ThresholdModel:
    """A non-XGBoost model: scores by feature 0 alone."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-4.0 * X[:, 0]))


def test_permutation_fallback_ranks_the_signal_first_and_is_seeded() -> None:
    X, y = _data(seed=4)
    importance = feature_importance(_ThresholdModel(), X, y, NAMES)
    assert importance.method.startswith("permutation")
    (first, drop), *rest = importance.scores
    assert first == "signal" and drop > 0.3
    assert all(abs(value) < 1e-9 for _, value in rest)  # unused columns change nothing
    assert permutation_importance(_ThresholdModel().predict, X, y, NAMES).scores == (
        importance.scores
    )


def test_permutation_with_a_custom_score() -> None:
    X, y = _data(seed=5)
    accuracy = lambda truth, scores: float(np.mean((scores >= 0.5) == truth))  # noqa: E731
    importance = permutation_importance(_ThresholdModel().predict, X, y, NAMES, score=accuracy)
    assert importance.top(1)[0][0] == "signal"


def test_importance_errors_and_serialisation(booster: xgb.Booster) -> None:
    X, y = _data(seed=6, rows=50)
    with pytest.raises(FtiError, match="2 feature names for a matrix of 5 columns"):
        permutation_importance(_ThresholdModel().predict, X, y, ["a", "b"])
    with pytest.raises(FtiError, match="neither an XGBoost booster nor predict"):
        feature_importance(object(), X, y)
    with pytest.raises(FtiError, match="zero rows"):
        shap_importance(booster, X[:0])
    data = shap_importance(booster, X).to_dict()
    assert list(data["scores"])[0] == "signal" and data["method"].startswith("SHAP")
    assert "| 1 | `signal` |" in shap_importance(booster, X).to_markdown(3)
