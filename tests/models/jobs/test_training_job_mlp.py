"""The training job with the PyTorch MLP spec, including a SIGKILLed run that resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fti.events import RegistryEvent
from fti.features.training_data import build_dataset
from fti.models.evaluation.metrics import evaluate_binary
from fti.models.jobs.training_job import FRAUD_INPUTS, run_training_job
from fti.models.registry import ModelRegistry
from fti.models.trainers import load_version
from fti.settings import Settings
from tests.models.jobs.test_training_job import ROWS, _append, _batch, _settings

ROOT = Path(__file__).resolve().parents[3]

#: Runs the fraud-mlp job, but stops after the checkpoint of epoch 2 until it is killed.
CHILD = """
import sys
from pathlib import Path

import fti.models.trainers.mlp as mlp
from fti.settings import Settings, TrainingSettings
from fti.models.jobs.training_job import run_training_job

save = mlp.save_checkpoint

def save_then_wait(directory, epoch, tensors, state):
    path = save(directory, epoch, tensors, state)
    if epoch == 2:
        print("checkpoint", epoch, flush=True)
        sys.stdin.read()  # blocks until the test kills this process
    return path

mlp.save_checkpoint = save_then_wait
training = TrainingSettings(device="cpu", n_estimators=100, window_labels=int(sys.argv[2]))
run_training_job(Settings(data_dir=Path(sys.argv[1]), training=training), model="fraud-mlp")
"""


@pytest.fixture
def store(tmp_path: Path) -> Settings:
    settings = _settings(tmp_path)
    _append(settings.offline_dir, *_batch(0, ROWS, seed=1))
    return settings


def _jobs(settings: Settings) -> list[str]:
    jobs = settings.data_dir / "jobs"
    return sorted(p.name for p in jobs.iterdir()) if jobs.is_dir() else []


def test_mlp_job_registers_a_gated_version(store: Settings) -> None:
    events: list[RegistryEvent] = []
    result = run_training_job(store, reason="manual", publish=events.append, model="fraud-mlp")

    assert (result.model, result.version, result.trainer) == ("fraud-mlp", 1, "mlp")
    assert result.promoted and result.metrics["roc_auc"] > 0.75 and result.device == "cpu"
    registry = ModelRegistry(store.registry_dir)
    version = registry.get("fraud-mlp", 1)
    assert {"model.safetensors", "mlp.json", "model_card.md", "roc.png"} <= set(version.files)
    assert registry.alias("fraud-mlp") == 1 and registry.alias("fraud-xgb") is None
    params = version.params
    assert params["trainer"] == "mlp" and params["device"] == "cpu"
    assert params["device_info"]["name"] == "cpu" and params["device_info"]["precision"] == "fp32"
    assert params["device_info"]["torch"].startswith("2.") and params["fit_seconds"] > 0
    assert len(params["history"]["val_loss"]) == params["epochs_run"] >= params["best_epoch"]
    assert params["resumed_from_epoch"] is None and params["pos_weight"] > 1
    assert [(e.model, e.event) for e in events] == [
        ("fraud-mlp", "registered"),
        ("fraud-mlp", "promoted"),
    ]
    card = registry.artifact_path("fraud-mlp", 1, "model_card.md").read_text()
    assert "# Model card: fraud-mlp v1" in card and "- trainer: mlp" in card
    assert "rounds/epochs, last {'train_loss'" in card
    assert _jobs(store) == []  # the work directory goes once the version is registered

    test = build_dataset(store.offline_dir, store.training).split.test
    model = load_version(registry, "fraud-mlp", 1)  # sha256-checked, safetensors
    scores = model.predict(FRAUD_INPUTS.matrix(test))
    assert evaluate_binary(FRAUD_INPUTS.target(test), scores) == version.metrics


def _run_and_kill_after_epoch_2(settings: Settings, log: Path) -> None:
    """Start the fraud-mlp job in a child process and SIGKILL it after its epoch-2 checkpoint."""
    with open(log, "w") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(settings.data_dir), str(ROWS)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            line = child.stdout.readline()  # EOF (and a failed assert) if the child dies first
            assert line.strip() == "checkpoint 2", log.read_text()
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=60) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=60)


def test_a_killed_mlp_job_resumes_with_the_same_weights(store: Settings, tmp_path: Path) -> None:
    whole = run_training_job(store, model="fraud-mlp")  # never interrupted: the reference
    _run_and_kill_after_epoch_2(store, tmp_path / "child.log")
    (workdir,) = _jobs(store)
    checkpoints = store.data_dir / "jobs" / workdir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "epoch-1.json",
        "epoch-1.safetensors",
        "epoch-2.json",
        "epoch-2.safetensors",
    ]

    resumed = run_training_job(store, model="fraud-mlp")

    registry = ModelRegistry(store.registry_dir)
    params = registry.get("fraud-mlp", resumed.version).params
    assert resumed.version == 2 and params["resumed_from_epoch"] == 2
    assert params["history"] == registry.get("fraud-mlp", whole.version).params["history"]
    before = load_file(str(registry.artifact_path("fraud-mlp", 1, "model.safetensors")))
    after = load_file(str(registry.artifact_path("fraud-mlp", 2, "model.safetensors")))
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert resumed.champion_version == 1 and resumed.champion_metrics == whole.metrics
    assert resumed.metrics == whole.metrics and resumed.promoted
    assert _jobs(store) == []
