"""Runs of a declared model's training job on the fraud example's backfilled history: what is
registered and published, what the gates refuse, an event Kafka never took, and an MLP job
killed mid-fit that resumes from its checkpoint with the same weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fti.connectors.kafka.publisher import DeliveryError
from fti.events import RegistryEvent
from fti.features.dataset_records import load_dataset_record
from fti.features.errors import DefinitionError
from fti.features.project.loader import Project
from fti.models.jobs.model_job import run_model_job
from fti.models.registry import ModelRegistry
from fti.models.registry.metadata import sha256_file
from fti.settings import Settings
from tests.champions import backfill_history
from tests.example_projects import example_project

ROOT = Path(__file__).resolve().parents[3]

#: Runs the example's MLP job, but stops after the checkpoint of epoch 2 until it is killed.
CHILD = """
import sys
from pathlib import Path

import fti.models.trainers.mlp as mlp
from fti.features.project.loader import load_project
from fti.models.jobs.model_job import run_model_job
from fti.settings import Settings

save = mlp.save_checkpoint

def save_then_wait(directory, epoch, tensors, state):
    path = save(directory, epoch, tensors, state)
    if epoch == 2:
        print("checkpoint", epoch, flush=True)
        sys.stdin.read()  # blocks until the test kills this process
    return path

mlp.save_checkpoint = save_then_wait
run_model_job(Settings(data_dir=Path(sys.argv[1])), load_project(Path(sys.argv[2])), "fraud-mlp")
"""


@pytest.fixture
def fraud(settings: Settings, tmp_path: Path) -> Project:
    """The fraud example, applied, with 4,000 backfilled transactions and their labels."""
    example = example_project("fraud", settings, tmp_path / "fraud")
    backfill_history(settings, example.project, tmp_path / "history")
    return example.project


def _jobs(settings: Settings) -> list[str]:
    jobs = settings.data_dir / "jobs"
    return sorted(p.name for p in jobs.iterdir()) if jobs.is_dir() else []


def test_first_run_registers_promotes_and_publishes(settings: Settings, fraud: Project) -> None:
    events: list[RegistryEvent] = []
    result = run_model_job(settings, fraud, "fraud-xgb", publish=events.append)

    assert result.version == 1 and result.promoted and result.reasons == []
    assert result.metrics["roc_auc"] > 0.8 and result.champion_metrics is None
    assert result.dataset_version == 1 and result.published == ["registered", "promoted"]
    registry = ModelRegistry(settings.registry_location)
    version = registry.get("fraud-xgb", 1)
    assert version.promoted and version.gates.passed and version.reason == "manual"
    assert {"model.ubj", "signature.json", "model_card.md"} <= set(version.files)
    for name, digest in version.files.items():
        assert sha256_file(registry.artifact_path("fraud-xgb", 1, name)) == digest
    assert [(e.event, e.version, e.alias) for e in events] == [
        ("registered", 1, None), ("promoted", 1, "champion")]
    assert events[1].sha256 == registry.version_sha256("fraud-xgb", 1)
    record = load_dataset_record(settings.data_dir / "datasets", 1)
    assert record.view == fraud.models["fraud-xgb"].view.name
    assert sum(s.rows for s in record.splits.values()) == record.rows > 3000
    card = registry.artifact_path("fraud-xgb", 1, "model_card.md").read_text()
    assert "# Model card: fraud-xgb v1" in card and "roc_auc" in card
    # The plots come after registration, as the version's report, each with its sha256.
    report = registry.report_files("fraud-xgb", 1)
    assert {"roc.png", "pr.png", "confusion.png"} <= set(report) and "roc.png" not in version.files
    folder = registry.root / "fraud-xgb" / "1" / "report"
    for name, digest in report.items():
        assert "](report/" + name + ")" in card and sha256_file(folder / name) == digest
        assert (folder / name).read_bytes().startswith(b"\x89PNG")


def test_a_candidate_below_its_gate_is_registered_not_promoted(
        settings: Settings, fraud: Project) -> None:
    run_model_job(settings, fraud, "fraud-xgb")
    model = fraud.models["fraud-xgb"]
    strict = replace(fraud, models={**fraud.models,
                                    "fraud-xgb": replace(model, gates={"roc_auc": 0.99999})})
    events: list[RegistryEvent] = []

    result = run_model_job(settings, strict, "fraud-xgb", reason="drift", publish=events.append)

    assert result.version == 2 and not result.promoted and result.champion_version == 1
    assert result.champion_metrics is not None
    assert any("roc_auc" in reason and "gate" in reason for reason in result.reasons)
    registry = ModelRegistry(settings.registry_location)
    assert registry.alias("fraud-xgb") == 1 and not registry.get("fraud-xgb", 2).promoted
    assert [e.event for e in events] == ["registered"]


def test_an_undelivered_registry_event_is_reported_not_called_published(
        settings: Settings, fraud: Project) -> None:
    delivered: list[RegistryEvent] = []

    def publish(event: RegistryEvent) -> None:
        if event.event == "promoted":
            raise DeliveryError("Kafka did not acknowledge 1 message(s)", {"registry.events": 1})
        delivered.append(event)

    result = run_model_job(settings, fraud, "fraud-xgb", publish=publish)

    assert result.version == 1 and result.promoted  # registered and promoted all the same
    assert result.published == ["registered"] and [e.event for e in delivered] == ["registered"]
    assert result.unpublished is not None and "['promoted']" in result.unpublished
    assert "NOT published" in result.unpublished


def _run_and_kill_after_epoch_2(settings: Settings, project: Project, log: Path) -> None:
    """Start the MLP job in a child process and SIGKILL it after its epoch-2 checkpoint."""
    with open(log, "w") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(settings.data_dir), str(project.directory)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            line = child.stdout.readline()  # EOF (and a failed assert) if the child dies first
            assert line.strip() == "checkpoint 2", log.read_text()
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=60) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=60)


@pytest.mark.slow
def test_a_killed_mlp_job_resumes_with_the_same_weights(
        settings: Settings, fraud: Project, tmp_path: Path) -> None:
    whole = run_model_job(settings, fraud, "fraud-mlp")  # never interrupted: the reference
    assert whole.trainer == "mlp" and _jobs(settings) == []
    _run_and_kill_after_epoch_2(settings, fraud, tmp_path / "child.log")
    (workdir,) = _jobs(settings)
    checkpoints = settings.data_dir / "jobs" / workdir / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "epoch-1.json", "epoch-1.safetensors", "epoch-2.json", "epoch-2.safetensors"]

    resumed = run_model_job(settings, fraud, "fraud-mlp")

    registry = ModelRegistry(settings.registry_location)
    params = registry.get("fraud-mlp", resumed.version).params
    assert resumed.version == 2 and params["resumed_from_epoch"] == 2
    before = load_file(str(registry.artifact_path("fraud-mlp", 1, "model.safetensors")))
    after = load_file(str(registry.artifact_path("fraud-mlp", 2, "model.safetensors")))
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert resumed.champion_version == 1 and resumed.metrics == whole.metrics
    assert _jobs(settings) == []


def test_a_slice_gate_slices_the_test_split_by_the_declared_columns(
        settings: Settings, fraud: Project) -> None:
    model = fraud.models["fraud-xgb"]
    with pytest.raises(DefinitionError, match="max_slice_gap needs the columns"):
        replace(model, max_slice_gap=0.1)
    with pytest.raises(DefinitionError, match="slice column 'country' is not a column"):
        replace(model, slices=["country"])
    sliced = replace(model, slices=["card_activity__hour_of_day"], max_slice_gap=1e-6)
    strict = replace(fraud, models={**fraud.models, "fraud-xgb": sliced})

    result = run_model_job(settings, strict, "fraud-xgb")

    assert not result.promoted
    assert any("gap" in r and "card_activity__hour_of_day" in r for r in result.reasons), \
        result.reasons
    registry = ModelRegistry(settings.registry_location)
    card = registry.artifact_path("fraud-xgb", 1, "model_card.md").read_text()
    assert "| card_activity__hour_of_day |" in card  # the slice table
    assert "slices.png" in registry.report_files("fraud-xgb", 1)
