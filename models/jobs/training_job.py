"""The training job: offline store → point-in-time dataset → trainer → gates → registry → events.

One run looks up the model's spec (`specs`), reads the offline store, builds and records
a dataset version, fits a candidate with the spec's trainer (`fti.models.trainers`), scores it and
the current champion on the same test split, registers the candidate with its model card, and
promotes it only if it passes the gates.

Trainers that checkpoint (the MLP) fit in a work directory that depends only on the model, its
hyperparameters and the dataset's rows, under ``data_dir/jobs``; a job killed mid-fit and run
again on the same data resumes from the last checkpoint there. The directory is removed once
the version is registered.
"""

from __future__ import annotations

import importlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from fti.connectors.errors import ConnectorError
from fti.events import RegistryEvent
from fti.features.definitions import FEATURE_COLUMNS, LABEL_COLUMN
from fti.features.training_data import (
    VIEW_NAME,
    TrainingDataset,
    build_dataset,
    check_trainable,
    save_dataset_version,
)
from fti.models.devices import describe_device, select_device
from fti.models.errors import JobError
from fti.models.evaluation.assessment import Assessment, assess, card_evidence
from fti.models.evaluation.model_card import CARD_FILE, ModelCardInfo, write_model_card
from fti.models.hpo.records import best_params_from
from fti.models.jobs.workdir import job_workdir
from fti.models.registry import CHAMPION, Lineage, ModelRegistry, ModelVersion
from fti.models.specs import SPECS, ModelSpec, apply_params, spec_for
from fti.models.trainers import FitResult, LoadedModel, ModelInputs, trainer_for
from fti.models.trainers.base import artifact_dir
from fti.settings import Settings

logger = logging.getLogger(__name__)

#: Fewest training rows the job accepts.
_STEPS = 7
#: What the built-in fraud models read and predict.
FRAUD_INPUTS = ModelInputs(FEATURE_COLUMNS, LABEL_COLUMN, "binary")

Publish = Callable[[RegistryEvent], None]


@dataclass(frozen=True)
class TrainingResult:
    """What one training run produced and decided."""

    model: str
    version: int
    metrics: dict[str, Any]
    champion_version: int | None
    champion_metrics: dict[str, Any] | None
    promoted: bool
    reasons: list[str]
    dataset_version: int
    device: str
    duration_s: float
    trainer: str = "xgboost"
    #: Registry events delivered to Kafka; an event not delivered is named in `unpublished`.
    published: list[str] = field(default_factory=list)
    unpublished: str | None = None

    @classmethod
    def of(
        cls,
        version: ModelVersion,
        dataset_version: int,
        device: str,
        duration_s: float,
        trainer: str = "xgboost",
    ) -> TrainingResult:
        """The result of a run that registered ``version``."""
        return cls(
            model=version.model,
            version=version.version,
            metrics=version.metrics,
            champion_version=version.champion_version,
            champion_metrics=version.champion_metrics_on_same_test,
            promoted=version.promoted,
            reasons=list(version.gates.reasons),
            dataset_version=dataset_version,
            device=device,
            duration_s=duration_s,
            trainer=trainer,
        )


@dataclass
class _Steps:
    """Logs one line per finished step and, when asked, advances a progress bar."""

    progress: bool
    bar: Any = field(default=None)

    def __post_init__(self) -> None:
        if self.progress:
            self.bar = tqdm(total=_STEPS, desc="training", unit="step")

    def done(self, message: str, *args: Any) -> None:
        logger.info(message, *args)
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_training_job(
    settings: Settings,
    reason: str = "manual",
    publish: Publish | None = None,
    progress: bool = False,
    model: str | None = None,
    params_from: str | None = None,
) -> TrainingResult:
    """Train, evaluate, gate and register one candidate of ``model``; publish its events.

    ``model`` names a spec in `specs.SPECS` (default ``settings.training.model_name``);
    ``params_from`` ("latest" or a file) overrides its hyperparameters with a `fti tune` result.
    Raises an FtiError (JobError, TrainingDataError, ...) before anything is registered when
    the data cannot train a model.
    """
    spec = spec_for(model or settings.training.model_name, settings)
    if params_from is not None:  # "latest" or a file written by `fti tune`
        spec = apply_params(spec, best_params_from(settings.data_dir, spec.name, params_from))
    if spec.kind == "lora":
        return _run_lora_job(settings, spec, reason, publish, progress)
    start = time.monotonic()
    steps = _Steps(progress)
    try:
        device = select_device(spec.device)
        dataset, dataset_version = _prepare_dataset(settings, spec, steps)
        with job_workdir(settings, spec, dataset) as workdir:
            fitted = _fit(spec, dataset, device, workdir, steps)
            outcome = _evaluate(settings, spec, dataset, fitted.model, steps)
            version = _register(settings, spec, dataset, dataset_version, fitted, outcome, reason)
        steps.done(
            "registered %s v%d (promoted: %s)", version.model, version.version, version.promoted
        )
        published, unpublished = _announce(settings, version, publish, steps)
    finally:
        steps.close()
    duration = time.monotonic() - start
    ran_on = fitted.params["device"]
    result = TrainingResult.of(version, dataset_version, ran_on, duration, spec.kind)
    return replace(result, published=published, unpublished=unpublished)


def _run_lora_job(
    settings: Settings, spec: ModelSpec, reason: str, publish: Publish | None, progress: bool
) -> TrainingResult:
    """Hand a LoRA spec to `fti.models.trainers.lora.run_lora_job`, imported only now."""
    try:
        lora = importlib.import_module("fti.models.trainers.lora")
    except ModuleNotFoundError as ex:
        if ex.name != "fti.models.trainers.lora":
            raise
        others = ", ".join(name for name in sorted(SPECS) if name != spec.name)
        raise JobError(
            f"model {spec.name!r} (trainer kind 'lora') is trained by "
            "fti.models.trainers.lora.run_lora_job, which is not in this installation; "
            f"add it, or train one of: {others}"
        ) from ex
    return lora.run_lora_job(settings, spec, reason, publish, progress)


def _prepare_dataset(
    settings: Settings, spec: ModelSpec, steps: _Steps
) -> tuple[TrainingDataset, int]:
    if spec.view != VIEW_NAME:
        raise JobError(
            f"model {spec.name!r} reads feature view {spec.view!r}, but the training job builds "
            f"datasets of view {VIEW_NAME!r} only"
        )
    dataset = build_dataset(settings.offline_location, settings.training)
    check_trainable(dataset)
    number = save_dataset_version(settings.data_dir / "datasets", dataset.record)
    splits = dataset.record.splits
    steps.done(
        "dataset v%d: train %d (%d fraud), validation %d, test %d (%d fraud), tables %s",
        number,
        splits["train"].rows,
        splits["train"].positives,
        splits["validation"].rows,
        splits["test"].rows,
        splits["test"].positives,
        dataset.record.table_versions,
    )
    return dataset, number


@dataclass(frozen=True)
class _Fitted:
    """A fitted candidate: what the trainer wrote, the model loaded back, metadata params."""

    result: FitResult
    model: LoadedModel
    params: dict[str, Any]


def _fit(
    spec: ModelSpec, dataset: TrainingDataset, device: str, workdir: Path, steps: _Steps
) -> _Fitted:
    trainer = trainer_for(spec.kind, FRAUD_INPUTS, spec.hyperparameters)
    started = time.monotonic()
    result = trainer.fit(dataset.split, FRAUD_INPUTS, device, workdir)
    seconds = time.monotonic() - started
    ran_on = str(result.params.get("device", device))  # XGBoost runs on the CPU unless cuda
    params = result.params | {
        "trainer": spec.kind,
        "device": ran_on,
        "device_info": describe_device(ran_on),
        "fit_seconds": round(seconds, 3),
        "history": result.history,
        "feature_columns": list(FEATURE_COLUMNS),
    }
    resumed = result.params.get("resumed_from_epoch")
    steps.done(
        "trained %s candidate on %s in %.1f s: %d rows, %d rounds/epochs%s",
        spec.kind,
        ran_on,
        seconds,
        dataset.split.train.num_rows,
        max((len(values) for values in result.history.values()), default=0),
        f" (resumed from epoch {resumed})" if resumed else "",
    )
    return _Fitted(result, trainer.load(artifact_dir(result.files)), params)


def _evaluate(
    settings: Settings,
    spec: ModelSpec,
    dataset: TrainingDataset,
    candidate: LoadedModel,
    steps: _Steps,
) -> Assessment:
    registry = ModelRegistry(settings.registry_location)
    result = assess(registry, spec, dataset.split.test, candidate, settings.inference.threshold,
                    FRAUD_INPUTS)
    metrics = result.metrics
    steps.done(
        "candidate on test: roc_auc %.4f, pr_auc %.4f, f1 %.4f, %d rows",
        metrics["roc_auc"], metrics["pr_auc"], metrics["f1"], metrics["rows"],
    )
    if result.champion_version is None:
        steps.done("no champion yet; the candidate is gated on thresholds only")
    else:
        steps.done(
            "champion v%d on the same test: roc_auc %.4f",
            result.champion_version, result.champion_metrics["roc_auc"],
        )
    gates = result.gates
    steps.done(
        "gates %s%s",
        "passed" if gates.passed else "failed",
        "" if gates.passed else ": " + "; ".join(gates.reasons),
    )
    return result


def _card_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as the model card shows them: the history as its length and last values."""
    history = params.get("history", {})
    shown = {name: round(values[-1], 5) for name, values in history.items() if values}
    steps = max((len(values) for values in history.values()), default=0)
    return {k: v for k, v in params.items() if k != "history"} | {
        "history": f"{steps} rounds/epochs, last {shown}"
    }


def _register(
    settings: Settings,
    spec: ModelSpec,
    dataset: TrainingDataset,
    dataset_version: int,
    fitted: _Fitted,
    outcome: Assessment,
    reason: str,
) -> ModelVersion:
    registry = ModelRegistry(settings.registry_location)
    name, number = spec.name, registry.next_version(spec.name)
    fields: dict[str, Any] = {
        "metrics": outcome.metrics,
        "gates": outcome.gates,
        "dataset": {"version": dataset_version, **dataset.record.model_dump(mode="json")},
        "champion_metrics_on_same_test": outcome.champion_metrics,
        "champion_version": outcome.champion_version,
        "reason": reason,
    }
    lineage = Lineage(feature_view=dataset.record.view, dataset_version=dataset_version,
                      table_versions=dataset.record.table_versions)
    with tempfile.TemporaryDirectory(prefix="fti-stage-") as staging:
        for file in fitted.result.files:
            shutil.copyfile(file, Path(staging) / Path(file).name)
        evidence = card_evidence(Path(staging), fitted.result.history, dataset.split.test,
                                 fitted.model, outcome, settings.inference.threshold,
                                 FRAUD_INPUTS)
        card = ModelCardInfo(
            model=name, version=number, created_at=datetime.now(UTC),
            params=_card_params(fitted.params), device=fitted.params["device_info"],
            duration_s=fitted.params["fit_seconds"], lineage=lineage, **evidence, **fields,
        )
        write_model_card(Path(staging) / CARD_FILE, card)
        return registry.register(
            name,
            Path(staging),
            promoted=outcome.gates.passed,
            card=CARD_FILE,
            version=number,
            params=fitted.params,
            signature=evidence["signature"],
            lineage=lineage,
            device=fitted.params["device"],
            **fields,
        )


def _announce(
    settings: Settings, version: ModelVersion, publish: Publish | None, steps: _Steps
) -> tuple[list[str], str | None]:
    """Promote a passing version, then publish "registered" (and "promoted") events.

    Return the events delivered and, when one was not, why (the version stays registered).
    """
    registry = ModelRegistry(settings.registry_location)
    events = [registry.event(version.model, version.version, "registered")]
    if version.promoted:
        # Promotion is automatic when the gates pass: the gates are the approver of record.
        why = f"gates passed (training triggered by {version.reason or 'manual'})"
        registry.approve(version.model, version.version, why, actor="fti-gates")
        registry.set_alias(version.model, CHAMPION, version.version, reason=why,
                           actor="fti-gates")
        events.append(registry.event(version.model, version.version, "promoted", CHAMPION))
    if publish is None:
        steps.done("not publishing registry events for %s v%d", version.model, version.version)
        return [], None
    published: list[str] = []
    for event in events:
        try:
            publish(event)
        except ConnectorError as ex:
            missing = [e.event for e in events if e.event not in published]
            problem = f"registry events {missing} of {version.model} v{version.version} were " \
                      f"NOT published: {ex}"
            logger.error("%s", problem)
            steps.done("registered %s v%d, events not published", version.model, version.version)
            return published, problem
        published.append(event.event)
    steps.done("published %s for %s v%d", published, version.model, version.version)
    return published, None
