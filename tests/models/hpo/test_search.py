"""`fti tune` of declared models: a tiny search per cheap built-in kind on a tests-own rides
project (XGBoost regression and binary, MLP regression), the record `best_params_from` reads,
a training run with ``params_from="latest"`` registering the found parameters, pruning during
boosting, seeded determinism, refusals, and the CLI."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest

from fti.cli.main import main
from fti.errors import ConfigError, FtiError
from fti.features.project.applied import apply
from fti.features.project.datasets import build_model_dataset
from fti.models.hpo.job import run_search_job
from fti.models.hpo.ray_tune import search_ray
from fti.models.hpo.records import (
    SearchRecord,
    best_params_from,
    search_record_path,
    search_records,
)
from fti.models.hpo.search import (
    SPACES,
    Dimension,
    SearchTarget,
    search,
    space_for,
    target_of,
)
from fti.models.jobs.model_job import model_inputs, run_model_job
from fti.models.registry import ModelRegistry
from fti.models.trainers import ModelInputs
from fti.settings import Settings
from tests.models.hpo.conftest import Rides


def distinct(trials: list[dict[str, Any]]) -> int:
    return len({json.dumps(t["params"], sort_keys=True) for t in trials})


def train_with(settings: Settings, rides: Rides, model: str) -> dict[str, Any]:
    """Train ``model`` with ``params_from="latest"``; the params its version registered."""
    result = run_model_job(settings, rides.project, model, params_from="latest")
    return ModelRegistry(settings.registry_location).get(model, result.version).params


def check_record(settings: Settings, record: SearchRecord, model: str, trials: int) -> None:
    """The record on disk is the one returned, and `best_params_from` reads it back."""
    [path] = search_records(settings.data_dir, model)
    assert path == search_record_path(settings.data_dir, model, record.created_at)
    saved = json.loads(path.read_text())
    assert saved["best_params"] == record.best_params and len(saved["trials"]) == trials
    assert saved["dataset"]["view"] == record.view and saved["dataset"]["table_versions"]
    assert best_params_from(settings.data_dir, model) == record.fixed_params | record.best_params
    complete = [t for t in record.trials if t["state"] == "COMPLETE"]
    pick = min if record.direction == "minimize" else max
    best = pick(complete, key=lambda t: t["value"])
    assert (best["params"], best["value"]) == (record.best_params, record.best_value)


def test_xgboost_regression_search_is_recorded_and_trained_with(
    rides: Rides, fresh: Settings
) -> None:
    record = run_search_job(fresh, rides.project, "tipper", n_trials=3, seed=5,
                            sampler="random")

    assert (record.kind, record.task, record.view) == ("xgboost", "regression", "tip_model")
    assert (record.metric, record.direction) == ("validation_mae", "minimize")
    assert [t["state"] for t in record.trials] == ["COMPLETE"] * 3
    assert distinct(record.trials) == 3
    assert set(record.best_params) == {d.name for d in SPACES["xgboost"]}
    check_record(fresh, record, "tipper", 3)

    params = train_with(fresh, rides, "tipper")
    for name, value in record.best_params.items():
        assert params[name] == pytest.approx(value), name
    assert params["n_jobs"] == 1 and params["random_state"] == 3  # declared, not searched


def test_xgboost_binary_search_prunes_during_boosting_and_keeps_fixed_params(
    rides: Rides, fresh: Settings
) -> None:
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    record = run_search_job(fresh, rides.project, "big_tipper", n_trials=6, seed=1,
                            sampler="random", fixed_params={"max_depth": 2}, pruner=pruner)

    assert (record.metric, record.direction) == ("validation_roc_auc", "maximize")
    assert record.fixed_params == {"max_depth": 2}
    assert all("max_depth" not in t["params"] for t in record.trials)
    assert distinct(record.trials) == 6
    pruned = [t for t in record.trials if t["state"] == "PRUNED"]
    assert record.pruned == len(pruned) >= 1
    assert all(t["value"] is None for t in pruned)
    assert all(t["steps"] < t["params"]["n_estimators"] for t in pruned)  # stopped mid-boosting
    assert 0.5 < record.best_value <= 1.0
    check_record(fresh, record, "big_tipper", 6)

    params = train_with(fresh, rides, "big_tipper")
    assert params["max_depth"] == 2 and params["task"] == "binary"
    for name, value in record.best_params.items():
        assert params[name] == pytest.approx(value), name


def test_mlp_search_is_recorded_and_trained_with(rides: Rides, fresh: Settings) -> None:
    record = run_search_job(fresh, rides.project, "tipper_mlp", n_trials=3, seed=0,
                            fixed_params={"epochs": 2})
    assert record.kind == "mlp" and record.metric == "validation_mae"
    assert distinct(record.trials) == 3
    assert all(t["steps"] == 2 for t in record.trials)  # one validation loss per epoch
    assert isinstance(record.best_params["hidden_sizes"], list)
    assert "epochs" not in record.best_params
    check_record(fresh, record, "tipper_mlp", 3)

    params = train_with(fresh, rides, "tipper_mlp")
    assert params["epochs"] == 2 and params["seed"] == 1
    for name, value in record.best_params.items():
        assert params[name] == pytest.approx(value), name


def _target(rides: Rides, model: str, **fixed: Any) -> SearchTarget:
    m = rides.project.models[model]
    dataset = build_model_dataset(m, rides.settings.offline_location, rides.settings.training)
    return target_of(m, dataset.split, model_inputs(m, dataset), "cpu", fixed)


def test_a_seeded_search_is_deterministic(rides: Rides) -> None:
    target = _target(rides, "big_tipper", n_estimators=30)
    first = search(target, n_trials=3, seed=3, sampler="tpe")
    second = search(target, n_trials=3, seed=3, sampler="tpe")
    assert first.trials == second.trials and first.best_params == second.best_params
    assert "n_estimators" not in first.best_params


def test_kinds_samplers_and_data_a_search_refuses(rides: Rides) -> None:
    assert [d.name for d in space_for("lora", {"steps": 30})] == ["lr", "rank"]

    class Mine:
        def fit(self) -> None: ...
        def load(self) -> None: ...

    with pytest.raises(ConfigError, match="declares its own as `search_space"):
        space_for(Mine)
    Mine.search_space = (Dimension("alpha", 0.1, 1.0),)  # type: ignore[attr-defined]
    assert [d.name for d in space_for(Mine)] == ["alpha"]
    with pytest.raises(ConfigError, match="nothing to search"):
        space_for(Mine, fixed={"alpha": 0.5})

    target = _target(rides, "big_tipper", n_estimators=10)
    with pytest.raises(ConfigError, match="sampler must be 'tpe' or 'random'"):
        search(target, n_trials=1, sampler="grid")  # type: ignore[arg-type]
    validation = target.split.validation
    flat = validation.filter(validation["big"].to_numpy() == 1)
    one_class = SearchTarget(**{**target.__dict__,
                                "split": type(target.split)(target.split.train, flat,
                                                            target.split.test)})
    with pytest.raises(FtiError, match="holds one class only; roc_auc needs both"):
        search(one_class, n_trials=1)
    with pytest.raises(FtiError, match="fti tune --project DIR --model nobody"):
        best_params_from(rides.settings.data_dir, "nobody")


def test_search_ray_without_ray_names_the_extra(
    rides: Rides, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = _target(rides, "big_tipper", n_estimators=10)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    with pytest.raises(FtiError, match=r"pip install 'fti\[ray\]'"):
        search_ray(target, n_trials=2)


def test_fti_tune_then_fti_train_params_from_latest(
    rides: Rides, fresh: Settings, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for var in list(os.environ):
        if var.upper().startswith("FTI_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("FTI_DATA_DIR", str(fresh.data_dir))
    apply(rides.project, fresh.data_dir)
    directory = str(rides.project.directory)

    assert main(["tune", "--project", directory, "--model", "tipper", "--trials", "2",
                 "--sampler", "random", "--seed", "4", "--fix", "n_estimators=30"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["model"] == "tipper" and out["trials"] == 2
    assert out["metric"] == "validation_mae" and out["direction"] == "minimize"
    assert Path(out["record"]).is_file()
    assert main(["train", "--project", directory, "--model", "tipper", "--params-from",
                 "latest", "--no-publish"]) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    params = ModelRegistry(fresh.registry_location).get("tipper", trained["version"]).params
    assert params["n_estimators"] == 30
    assert params["max_depth"] == out["best_params"]["max_depth"]

    assert main(["tune", "--project", directory, "--model", "tipper", "--fix", "oops"]) == 2
    assert "--fix takes KEY=VALUE" in capsys.readouterr().err


def test_a_lora_search_on_a_tiny_encoder_scores_pairs_on_validation(tmp_path: Path) -> None:
    from tests.models.trainers.lora_support import (
        TEXT_COLUMNS,
        TINY_PARAMS,
        pair_split,
        tiny_encoder,
    )

    split = pair_split(160, 60, 20)
    inputs = ModelInputs(TEXT_COLUMNS, "winner", "preference").with_classes(split)
    params = TINY_PARAMS | {"base_model": str(tiny_encoder(tmp_path / "tiny"))}
    target = SearchTarget(name="judge", kind="lora", inputs=inputs, split=split, params=params,
                          fixed={"steps": 10}, metric="accuracy", direction="maximize")

    result = search(target, n_trials=2, seed=1, sampler="random")

    assert len(result.trials) == 2 and distinct(result.trials) == 2
    assert set(result.best_params) == {"lr", "rank"}  # steps was fixed
    assert 0.0 <= result.best_value <= 1.0
    assert result.best_value == max(t["value"] for t in result.trials if t["value"] is not None)
