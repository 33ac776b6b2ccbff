"""Model specs, the trainer catalogue, and device selection."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

from fti.errors import ConfigError, FtiError
from fti.models.devices import (
    describe_device,
    device_available,
    select_device,
    torch_device,
    xgboost_device,
)
from fti.models.jobs.training_job import run_training_job
from fti.models.specs import SPECS, ModelSpec, spec_for
from fti.models.trainers import trainer_for
from fti.settings import Settings, TrainingSettings


def test_every_catalogued_spec_builds_and_names_itself() -> None:
    settings = Settings()
    kinds = {name: spec_for(name, settings).kind for name in SPECS}
    assert kinds == {"fraud-xgb": "xgboost", "fraud-mlp": "mlp", "preference-lora": "lora"}
    assert all(spec_for(name, settings).name == name for name in SPECS)
    assert spec_for("fraud-mlp", settings).view == "fraud_v1"


def test_specs_follow_the_settings() -> None:
    training = TrainingSettings(
        n_estimators=77, seed=3, min_auc=0.6, max_auc_regression=0.05, device="cpu"
    )
    settings = Settings(training=training)
    xgb = spec_for("fraud-xgb", settings)
    assert xgb.hyperparameters == {
        "n_estimators": 77,
        "max_depth": 4,
        "learning_rate": 0.1,
        "seed": 3,
    }
    assert (xgb.min_auc, xgb.max_auc_regression, xgb.device) == (0.6, 0.05, "cpu")
    assert spec_for("fraud-mlp", settings).hyperparameters["seed"] == 3
    hyperparameters = spec_for("fraud-mlp", settings).hyperparameters
    assert trainer_for("mlp", params=hyperparameters).kind == "mlp"


def test_unknown_names_and_kinds_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown model 'fraud-rnn'; known models: fraud-mlp, "):
        spec_for("fraud-rnn", Settings())
    with pytest.raises(ConfigError, match=r"trainer kind must be one of \['xgboost', 'mlp'"):
        ModelSpec("m", "fraud_v1", "svm")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no trainer of kind 'svm'; known kinds: lora, mlp"):
        trainer_for("svm")


def test_lora_specs_go_to_the_lora_trainer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, ...]] = []
    fake = types.ModuleType("fti.models.trainers.lora")
    fake.run_lora_job = lambda *args: calls.append(args) or "result"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fti.models.trainers.lora", fake)
    settings = Settings(data_dir=tmp_path)
    assert run_training_job(settings, "drift", None, False, model="preference-lora") == "result"
    ((got_settings, spec, reason, publish, progress),) = calls
    assert got_settings is settings and spec.name == "preference-lora" and spec.kind == "lora"
    assert (reason, publish, progress) == ("drift", None, False)


def test_a_missing_lora_trainer_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "fti.models.trainers.lora", None)  # import fails
    with pytest.raises(FtiError, match=r"fti.models.trainers.lora.run_lora_job.*fraud-mlp"):
        run_training_job(Settings(data_dir=tmp_path), model="preference-lora")


def _accelerator() -> str | None:
    return next((d for d in ("cuda", "xla", "mps") if device_available(d)), None)


def test_auto_picks_the_best_device_present() -> None:
    assert select_device("auto") == (_accelerator() or "cpu")
    assert select_device(" CPU ") == "cpu"


@pytest.mark.skipif(device_available("cuda"), reason="this machine has a GPU")
def test_asking_for_an_absent_gpu_is_an_error() -> None:
    with pytest.raises(ConfigError, match="training device 'cuda' is not available on this"):
        select_device("cuda")


@pytest.mark.skipif(device_available("xla"), reason="this machine has an XLA device")
def test_asking_for_an_absent_tpu_is_an_error() -> None:
    with pytest.raises(ConfigError, match="'xla' is not available.*torch_xla"):
        select_device("xla")


def test_unknown_devices_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"one of \['auto', 'cpu', 'cuda', 'xla', 'mps'\]"):
        select_device("tpu")


def test_describe_cpu() -> None:
    import torch  # noqa: F401 - describe_device("cpu") reports torch only once it is imported

    info = describe_device("cpu")
    assert info["name"] == "cpu" and info["precision"] == "fp32"
    assert info["cpu_count"] == os.cpu_count() and info["hardware"]
    assert info["torch"].startswith("2.") and info["torch_threads"] >= 1
    assert str(torch_device("cpu")) == "cpu"
    assert [xgboost_device(d) for d in ("cpu", "cuda", "xla", "mps")] == [
        "cpu",
        "cuda",
        "cpu",
        "cpu",
    ]
