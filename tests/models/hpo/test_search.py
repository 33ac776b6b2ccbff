"""Hyperparameter search: seeded determinism, pruning, better than a bad fixed configuration,
the MLP space, the Ray extra's error, and the recorded search job."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna
import pyarrow as pa
import pytest

from fti.bench.train_overhead import fill_offline_store
from fti.errors import ConfigError, FtiError
from fti.features.definitions import FEATURE_COLUMNS, LABEL_COLUMN
from fti.features.training_data import Split
from fti.models.hpo.job import run_search_job
from fti.models.hpo.ray_tune import search_ray
from fti.models.hpo.records import best_params_from, search_records
from fti.models.hpo.search import SPACES, objective_for, search, space_for
from fti.models.specs import ModelSpec, apply_params, spec_for
from fti.settings import Settings, TrainingSettings

#: One XGBoost thread: on a loaded 2-core machine two OpenMP threads make tiny fits far slower.
FAST_XGB = {"n_jobs": 1}
#: The XGBoost space with at most 80 rounds, to keep the tests quick.
SMALL = tuple(
    replace(d, low=20, high=80) if d.name == "n_estimators" else d for d in SPACES["xgboost"]
)


def _part(rng: np.random.Generator, n: int) -> pa.Table:
    """Fraud depends on two features only (amount and tx_count_1h), with noise."""
    columns = {name: rng.normal(size=n) for name in FEATURE_COLUMNS}
    risk = columns["amount"] + columns["tx_count_1h"] + rng.normal(0, 0.7, n)
    return pa.table({**columns, LABEL_COLUMN: (risk > 1.8).astype(np.int8)})


@pytest.fixture(scope="module")
def split() -> Split:
    rng = np.random.default_rng(0)
    return Split(train=_part(rng, 1400), validation=_part(rng, 300), test=_part(rng, 300))


@pytest.fixture(scope="module")
def xgb_spec() -> ModelSpec:
    return replace(apply_params(spec_for("fraud-xgb", Settings()), FAST_XGB), device="cpu")


def _noop(step: int, value: float) -> None:
    pass


@pytest.mark.parametrize(("sampler", "trials"), [("random", 5), ("tpe", 12)])
def test_seeded_search_is_deterministic(
    split: Split, xgb_spec: ModelSpec, sampler: str, trials: int
) -> None:
    first = search(xgb_spec, split, n_trials=trials, seed=3, sampler=sampler, space=SMALL)
    second = search(xgb_spec, split, n_trials=trials, seed=3, sampler=sampler, space=SMALL)

    assert first.best_params == second.best_params
    assert first.trials == second.trials and len(first.trials) == trials
    assert set(first.best_params) == {d.name for d in SPACES["xgboost"]}


def test_aggressive_pruner_prunes_during_boosting(split: Split, xgb_spec: ModelSpec) -> None:
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    result = search(
        xgb_spec, split, n_trials=6, seed=1, sampler="random", pruner=pruner, space=SMALL
    )

    pruned = [t for t in result.trials if t["state"] == "PRUNED"]
    assert result.pruned == len(pruned) >= 1
    assert all(t["value"] is None for t in pruned)
    assert all(t["steps"] < t["params"]["n_estimators"] for t in pruned)  # stopped mid-boosting


def test_best_beats_a_bad_configuration_and_is_a_usable_override(
    split: Split, xgb_spec: ModelSpec
) -> None:
    bad = {"max_depth": 1, "learning_rate": 0.001, "n_estimators": 3, "colsample_bytree": 0.1}
    bad_value = objective_for(apply_params(xgb_spec, bad), split)({}, _noop)
    result = search(
        xgb_spec, split, n_trials=6, seed=2, sampler="random", pruner="none", space=SMALL
    )

    assert result.best_value > bad_value + 0.05
    tuned = apply_params(xgb_spec, result.best_params)
    assert objective_for(tuned, split)({}, _noop) == pytest.approx(result.best_value)


def test_mlp_search_runs_three_tiny_trials(split: Split) -> None:
    spec = spec_for("fraud-mlp", Settings())
    spec = replace(apply_params(spec, {"epochs": 2, "patience": 2}), device="cpu")
    seen: list[dict] = []
    result = search(spec, split, n_trials=3, seed=0, progress=seen.append)

    assert len(result.trials) == len(seen) == 3
    assert isinstance(result.best_params["hidden_sizes"], list)
    assert 0.5 < result.best_value <= 1.0
    assert apply_params(spec, result.best_params).hyperparameters["epochs"] == 2


def test_unknown_kind_sampler_and_single_class_validation_are_refused(
    split: Split, xgb_spec: ModelSpec
) -> None:
    with pytest.raises(ConfigError, match="no search space for trainer kind 'lora'"):
        space_for("lora")
    with pytest.raises(ConfigError, match="sampler must be 'tpe' or 'random'"):
        search(xgb_spec, split, n_trials=1, sampler="grid")  # type: ignore[arg-type]
    flat = split.validation.set_column(
        split.validation.schema.get_field_index(LABEL_COLUMN), LABEL_COLUMN,
        pa.array(np.zeros(split.validation.num_rows, dtype=np.int8)),
    )
    with pytest.raises(FtiError, match="needs both classes"):
        search(xgb_spec, Split(split.train, flat, split.test), n_trials=1)


def test_search_ray_without_ray_names_the_extra(
    split: Split, xgb_spec: ModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    with pytest.raises(FtiError, match=r"pip install 'fti\[ray\]'"):
        search_ray(xgb_spec, split, n_trials=2)


def test_run_search_job_records_its_result(tmp_path: Path) -> None:
    training = TrainingSettings(device="cpu", window_labels=0, n_estimators=30)
    settings = Settings(data_dir=tmp_path, training=training)
    fill_offline_store(settings.offline_dir, 1500)

    record = run_search_job(
        settings, "fraud-xgb", n_trials=3, seed=5, sampler="random", fixed_params=FAST_XGB
    )

    [path] = search_records(tmp_path, "fraud-xgb")
    saved = json.loads(path.read_text())
    assert saved["best_params"] == record.best_params and saved["seed"] == 5
    assert len(saved["trials"]) == 3 and saved["metric"] == "validation_roc_auc"
    assert saved["dataset"]["table_versions"] == {"card_features": 1, "labels": 1}
    assert saved["fixed_params"] == FAST_XGB
    assert best_params_from(tmp_path, "fraud-xgb") == FAST_XGB | record.best_params
    assert best_params_from(tmp_path, "fraud-xgb", str(path)) == FAST_XGB | record.best_params
    with pytest.raises(FtiError, match="fti tune --model fraud-mlp"):
        best_params_from(tmp_path, "fraud-mlp")
