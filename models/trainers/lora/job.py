"""The LoRA training job: read ``preference_pairs``, train, evaluate, register the adapter
with its card, promote it past the accuracy gate, and publish the registry events.

The job's work directory pins the table version it read, so a job killed after a checkpoint
resumes on the same data when run again with the same spec.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from fti.errors import FtiError
from fti.events import WINNERS
from fti.features.definitions import PREFERENCES_TABLE
from fti.models import devices
from fti.models.registry import CHAMPION, Lineage, ModelRegistry, check_name
from fti.models.trainers.lora.card import render_lora_card
from fti.models.trainers.lora.config import (
    CARD_FILE,
    INPUT_FORMAT,
    TOKENIZER_MAX_BYTES,
    TRAINING_LOG,
    LoraConfigSpec,
    LoraTrainingParams,
    Publish,
    lora_hyperparameters,
)
from fti.models.trainers.lora.data import (
    EncodedPairs,
    _check_trainable,
    _split_stats,
    _table_sha256,
    encode_pairs,
    read_preference_pairs,
    split_by_pair_id,
)
from fti.models.trainers.lora.metrics import evaluate_multiclass, predict_proba
from fti.models.trainers.lora.model import (
    base_model_path,
    head_state,
    load_adapter,
    load_tokenizer,
    save_adapter,
    verify_base_model,
)
from fti.models.trainers.lora.train import TrainedLora, train_lora
from fti.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoraJobResult:
    """What one LoRA training job produced and decided; the fields `TrainingResult` has (its
    data is recorded as a Lance table version in the registry, not as a dataset version)."""

    model: str
    version: int
    metrics: dict[str, Any]
    promoted: bool
    reasons: list[str]
    device: str
    duration_s: float
    base_model: str
    base_sha256: str
    table_version: int
    steps: int
    steps_per_second: float
    champion_version: int | None = None
    champion_metrics: dict[str, Any] | None = None
    dataset_version: int | None = None
    trainer: str = "lora"


def run_lora_job(
    settings: Settings, spec: Any, reason: str = "manual", publish: Publish | None = None,
    progress: bool = False,
) -> LoraJobResult:
    """Train, evaluate and register ``spec.name`` from ``preference_pairs``; promote it when
    test accuracy >= ``min_accuracy``; publish its registry events. A job killed after a
    checkpoint resumes from it when run again with the same spec.

    ``spec`` needs ``name``, ``hyperparameters`` (see `lora_hyperparameters`; empty for the
    defaults) and ``device`` (empty for "auto"), as a `ModelSpec` has; ``view`` is optional."""
    began = time.monotonic()
    name = check_name("model", spec.name)
    lora, params = lora_hyperparameters(spec.hyperparameters or {})
    device = devices.select_device(spec.device or "auto")
    base = Path(params.base_model) if params.base_model else base_model_path()
    base_sha = verify_base_model(base, params.base_sha256)
    workdir = settings.data_dir / "lora-work" / name
    identity = {"lora": lora.model_dump(mode="json"), "params": params.model_dump(mode="json"),
                "base_sha256": base_sha, "device": device}  # fmt: skip
    table, table_version = _read_for_job(settings.offline_location, workdir, identity)
    train_rows, test_rows = split_by_pair_id(table, params.test_fraction, params.seed)
    _check_trainable(train_rows, test_rows)
    tokenizer = load_tokenizer(base)
    train = encode_pairs(tokenizer, train_rows.to_pylist(), params.max_length)
    test = encode_pairs(tokenizer, test_rows.to_pylist(), params.max_length)
    logger.info("%s: %d train / %d test pairs (table version %d), %s on %s",
                name, len(train), len(test), table_version, base, device)
    trained = train_lora(base, train, lora, params, device, workdir / "checkpoints",
                         progress=progress, base_sha256=base_sha)
    metrics, gates = _evaluate(trained, test, device, params)
    version = _register(
        settings, name, trained, tokenizer, base, metrics,
        _run_params(lora, params, base, base_sha, device, trained),
        _dataset_record(table, table_version, train_rows, test_rows, params)
        | {"view": getattr(spec, "view", None)}, gates, reason,  # callers' specs may lack view
    )
    _announce(settings, name, version, gates["passed"], publish)
    shutil.rmtree(workdir, ignore_errors=True)
    return LoraJobResult(name, version, metrics, gates["passed"], gates["reasons"], device,
                         time.monotonic() - began, str(base), base_sha, table_version,
                         trained.steps, trained.steps_per_second)


def _read_for_job(
    offline_dir: Path, workdir: Path, identity: dict[str, Any]
) -> tuple[pa.Table, int]:
    """Read ``preference_pairs`` for a job: at the version an interrupted job with the same
    identity used (so it resumes from its checkpoints), else at the latest version after
    clearing stale work."""
    state, pinned = workdir / "job.json", None
    if state.is_file():
        job = json.loads(state.read_text())
        pinned = int(job["table_version"]) if job.get("identity") == identity else None
    try:
        table, version = read_preference_pairs(offline_dir, pinned)
    except FtiError:
        if pinned is None:
            raise
        pinned = None  # the pinned version was pruned: start over on the latest
        table, version = read_preference_pairs(offline_dir)
    if pinned is None:
        shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"identity": identity, "table_version": version}))
    return table, version


def _evaluate(
    trained: TrainedLora, test: EncodedPairs, device: str, params: LoraTrainingParams
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Test metrics and the promotion gate record."""
    probs = predict_proba(trained.model, test, device, params.eval_batch_size)
    metrics = evaluate_multiclass(test.labels, probs.argmax(axis=1), probs)
    metrics["train_loss_final"] = trained.losses[-1]
    passed = metrics["accuracy"] >= params.min_accuracy
    reasons = [] if passed else [
        f"accuracy {metrics['accuracy']:.4f} < min_accuracy {params.min_accuracy}"]
    return metrics, {"passed": passed, "reasons": reasons}


def _dataset_record(
    table: pa.Table, version: int, train: pa.Table, test: pa.Table, params: LoraTrainingParams
) -> dict[str, Any]:
    return {"table": PREFERENCES_TABLE, "table_version": version, "split": "random",
            "split_key": "pair_id", "seed": params.seed, "test_fraction": params.test_fraction,
            "rows": table.num_rows, "rows_sha256": _table_sha256(table),
            "splits": {"train": _split_stats(train), "test": _split_stats(test)}}


def _run_params(
    lora: LoraConfigSpec, params: LoraTrainingParams, base: Path, base_sha: str, device: str,
    trained: TrainedLora,
) -> dict[str, Any]:
    weights = list(trained.model.parameters())
    heads = sorted({key.rsplit(".", 1)[0] for key in head_state(trained.model)})
    return {"lora": lora.model_dump(mode="json"), "training": params.model_dump(mode="json"),
            "head_modules": heads,
            "base_model": str(base), "base_sha256": base_sha, "device": device,
            "device_info": devices.describe_device(device), "classes": list(WINNERS),
            "input_format": INPUT_FORMAT, "steps": trained.steps,
            "steps_per_second": round(trained.steps_per_second, 4),
            "trainable_parameters": sum(p.numel() for p in weights if p.requires_grad),
            "total_parameters": sum(p.numel() for p in weights)}


def _register(
    settings: Settings, name: str, trained: TrainedLora, tokenizer: Any, base: Path,
    metrics: dict[str, Any], params: dict[str, Any], dataset: dict[str, Any],
    gates: dict[str, Any], reason: str,
) -> int:
    registry = ModelRegistry(settings.registry_location)
    number = registry.next_version(name)
    with tempfile.TemporaryDirectory(prefix="fti-lora-") as tmp:
        staging, tokenizer_dir = Path(tmp) / "artifacts", Path(tmp) / "tokenizer"
        head = save_adapter(trained.model, staging)
        load_adapter(base, staging, expected_head=head)  # the saved files restore the head
        tokenizer.save_pretrained(tokenizer_dir)
        files = [p for p in sorted(tokenizer_dir.iterdir()) if p.is_file()]
        if sum(p.stat().st_size for p in files) <= TOKENIZER_MAX_BYTES:
            for path in files:
                shutil.copyfile(path, staging / path.name)
        (staging / TRAINING_LOG).write_text(json.dumps({"losses": trained.losses}))
        card = render_lora_card(name, number, metrics, params, dataset, gates, reason)
        if trained.losses:
            from fti.models.evaluation.plots import plot_loss_curve

            plot_loss_curve({"train_loss": trained.losses}, staging / "loss.png",
                            title="LoRA training loss per step")
            card += "\n## Training loss\n\n![Training loss](loss.png)\n"
        (staging / CARD_FILE).write_text(card)
        registry.register(name, staging, gates=gates, metrics=metrics, params=params,
                          dataset=dataset, promoted=gates["passed"], card=CARD_FILE,
                          lineage=Lineage(feature_view="preferences_v1", table_versions={
                              dataset["table"]: dataset["table_version"]}),
                          device=str(params.get("device")) if params.get("device") else None,
                          reason=reason, version=number)
    return number


def _announce(
    settings: Settings, name: str, version: int, promoted: bool, publish: Publish | None
) -> None:
    """Point the champion at a promoted version; publish "registered" (and "promoted")."""
    registry = ModelRegistry(settings.registry_location)
    events = [registry.event(name, version, "registered")]
    if promoted:
        registry.set_alias(name, CHAMPION, version)
        events.append(registry.event(name, version, "promoted", CHAMPION))
    for event in events:
        if publish is not None:
            publish(event)
    logger.info("%s v%d registered (promoted: %s)", name, version, promoted)
