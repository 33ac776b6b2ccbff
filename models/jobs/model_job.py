"""The training job of a declared model: view → dataset → trainer → task metrics → gates →
registry → events.

One run builds and records a dataset version of the model's view (`build_model_dataset`),
fits a candidate with the model's trainer (built-in kind or the user's class), scores it and
the current champion on the same test split in the task's metrics, registers the candidate
with its signature and model card, and promotes it only if it passes the model's gates.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from fti.features.dataset_records import TrainingDataset, save_dataset_version
from fti.features.errors import DefinitionError
from fti.features.project.datasets import build_model_dataset, check_trainable
from fti.features.project.model import Model
from fti.models.devices import describe_device, select_device
from fti.models.evaluation.gates import check_task_gates
from fti.models.evaluation.metrics import evaluate_task
from fti.models.evaluation.model_card import CARD_FILE, draw_task_plots, write_task_card
from fti.models.evaluation.slices import SliceReport, evaluate_slices
from fti.models.hpo.records import best_params_from
from fti.models.jobs.outcome import JobSteps, Publish, TrainingResult, announce
from fti.models.jobs.workdir import job_workdir
from fti.models.registry import Lineage, ModelRegistry, ModelVersion, Signature
from fti.models.registry.model_registry import REPORT_DIR
from fti.models.serving import load_serving_model
from fti.models.trainers import ModelInputs, load_artifacts, table_inputs, trainer_for
from fti.settings import Settings

if TYPE_CHECKING:
    from fti.features.project.loader import Project

logger = logging.getLogger(__name__)


def model_of(project: Project, name: str | None) -> Model:
    """The project's model `name` (the only one when None); an error names the choices."""
    if name is None and len(project.models) == 1:
        return next(iter(project.models.values()))
    if name not in project.models:
        raise DefinitionError(
            f"unknown model {name!r}; the project in {project.directory} declares "
            f"{', '.join(sorted(project.models)) or 'none'}")
    return project.models[name]


def model_inputs(model: Model, dataset: TrainingDataset) -> ModelInputs:
    """What the trainer learns from and predicts (for a classification task, the classes
    its train and validation splits hold)."""
    inputs = ModelInputs(tuple(model.feature_columns()), model.label_column(), model.task)
    return inputs.with_classes(dataset.split)


def run_model_job(settings: Settings, project: Project, name: str | None = None,
                  reason: str = "manual", publish: Publish | None = None,
                  progress: bool = False, params_from: str | None = None) -> TrainingResult:
    """Train, evaluate, gate and register one candidate of a declared model; publish its
    registry events. Raises an FtiError before anything is registered when the data cannot
    train the model."""
    model = model_of(project, name)
    params = dict(model.params)
    if params_from is not None:  # "latest" or a file written by `fti tune`
        params |= best_params_from(settings.data_dir, model.name, params_from)
    start = time.monotonic()
    steps = JobSteps(progress)
    try:
        device = select_device(model.device, uses_torch=model.trainer_kind() != "xgboost")
        dataset = build_model_dataset(model, settings.offline_location, settings.training)
        check_trainable(model, dataset)
        number = save_dataset_version(settings.data_dir / "datasets", dataset.record)
        s = dataset.record.splits
        steps.done("dataset v%d of view %s: train %d, validation %d, test %d rows, tables %s",
                   number, model.view.name, s["train"].rows, s["validation"].rows,
                   s["test"].rows, dataset.record.table_versions)
        inputs = model_inputs(model, dataset)
        trainer = trainer_for(model.trainer, inputs, params)
        with job_workdir(settings, model.name, trainer.kind, params, dataset) as workdir:
            fit_started = time.monotonic()
            fitted = trainer.fit(dataset.split, inputs, device, workdir)
            fit_s = time.monotonic() - fit_started
            ran_on = str(fitted.params.get("device", device))
            steps.done("trained %s candidate of %s on %s in %.1f s: %d rows",
                       trainer.kind, model.name, ran_on, fit_s, dataset.split.train.num_rows)
            candidate = load_artifacts(workdir, model.trainer)
            test = dataset.split.test
            y = inputs.target(test)
            scores = candidate.predict(table_inputs(test, inputs.features))
            metrics = evaluate_task(model.task, y, scores, model.threshold, inputs.classes)
            steps.done("candidate on test: %s", _shown(metrics))
            registry = ModelRegistry(settings.registry_location)
            champion_version, champion_metrics = _champion_on(registry, model, test, inputs)
            slices = _slices(model, test, y, scores)
            gates = check_task_gates(model, metrics, champion_metrics, slice_report=slices)
            steps.done("gates %s%s", "passed" if gates.passed else "failed",
                       "" if gates.passed else ": " + "; ".join(gates.reasons))
            run_params = fitted.params | {
                "trainer": model.trainer_kind(), "task": model.task, "device": ran_on,
                "device_info": describe_device(ran_on), "fit_seconds": round(fit_s, 3),
                "feature_columns": list(inputs.features), "label": inputs.label,
                "classes": list(inputs.classes) if inputs.classes else None,
                "history": fitted.history,
            }
            version = _register(settings, registry, model, dataset, number, fitted.files,
                                run_params, metrics, gates, champion_version, champion_metrics,
                                reason, y, scores, slices)
        steps.done("registered %s v%d (promoted: %s)", version.model, version.version,
                   version.promoted)
        published, unpublished = announce(settings, version, publish, steps)
        # The version serves from here on; its plots follow, off the critical path.
        _attach_report(registry, model, version, run_params, metrics, y, scores, slices)
    finally:
        steps.close()
    result = TrainingResult.of(version, number, ran_on, time.monotonic() - start,
                               model.trainer_kind())
    return replace(result, published=published, unpublished=unpublished)


def _shown(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                     if isinstance(v, float) and not isinstance(v, bool))


def _slices(model: Model, test: pa.Table, y: np.ndarray, scores: np.ndarray
            ) -> SliceReport | None:
    """The test split's metrics per slice of the model's `slices` columns (None: none)."""
    if not model.slices:
        return None
    columns = {c: test[c].to_numpy(zero_copy_only=False) for c in model.slices}
    return evaluate_slices(columns, y, scores, list(model.slices), threshold=model.threshold)


def _attach_report(registry: ModelRegistry, model: Model, version: ModelVersion,
                   params: dict[str, Any], metrics: dict[str, Any], y: np.ndarray,
                   scores: np.ndarray, slices: SliceReport | None = None) -> None:
    """Draw the card's plots and attach them as the version's report; a failure is logged,
    never raised: the version is registered (and maybe serving) already."""
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="fti-report-") as folder:
            drawn = draw_task_plots(Path(folder), model, params, metrics, y, scores,
                                    slices=slices)
            if drawn:
                registry.attach_report(version.model, version.version, Path(folder))
    except Exception:  # a plot must never undo a registered version
        logger.exception("the report (plots) of %s v%d could not be attached; its card "
                         "links plots that are missing", version.model, version.version)
        return
    logger.info("report of %s v%d: %d plots attached in %.1f s", version.model,
                version.version, len(drawn), time.monotonic() - started)


def _champion_on(registry: ModelRegistry, model: Model, test: pa.Table,
                 inputs: ModelInputs) -> tuple[int | None, dict[str, Any] | None]:
    """The champion's version and its metrics on the candidate's test split (None when
    there is no champion, or it reads columns the split does not hold)."""
    version = registry.alias(model.name)
    if version is None:
        return None, None
    champion = load_serving_model(registry, model.name, version)
    missing = [c for c in champion.features if c not in test.column_names]
    if missing:
        logger.warning("champion v%d of %s reads %s, which this view no longer has; the "
                       "candidate is gated on thresholds only", version, model.name, missing)
        return version, None
    scores = champion.score(table_inputs(test, champion.features))
    return version, evaluate_task(model.task, inputs.target(test), scores, model.threshold,
                                  inputs.classes)


def _register(settings: Settings, registry: ModelRegistry, model: Model,
              dataset: TrainingDataset, dataset_version: int, files: list[str],
              params: dict[str, Any], metrics: dict[str, Any], gates: Any,
              champion_version: int | None, champion_metrics: dict[str, Any] | None,
              reason: str, y: np.ndarray, scores: np.ndarray,
              slices: SliceReport | None = None) -> ModelVersion:
    number = registry.next_version(model.name)
    lineage = Lineage(feature_view=model.view.name, dataset_version=dataset_version,
                      table_versions=dataset.record.table_versions)
    signature = Signature.of(params["feature_columns"],
                             "string" if model.reads_text() else "float32",
                             output=(f"{model.task}_output", "float32"))
    fields: dict[str, Any] = {
        "metrics": metrics, "gates": gates,
        "dataset": {"version": dataset_version, **dataset.record.model_dump(mode="json")},
        "champion_metrics_on_same_test": champion_metrics,
        "champion_version": champion_version, "reason": reason,
    }
    with tempfile.TemporaryDirectory(prefix="fti-stage-") as staging:
        for file in files:
            shutil.copyfile(file, Path(staging) / Path(file).name)
        write_task_card(Path(staging) / CARD_FILE, model=model, version=number,
                        created_at=datetime.now(UTC), params=params, metrics=metrics,
                        gates=gates, champion_version=champion_version,
                        champion_metrics=champion_metrics, lineage=lineage, y_true=y,
                        scores=scores, reason=reason, slices=slices, plots_in=REPORT_DIR)
        return registry.register(
            model.name, Path(staging), promoted=gates.passed, card=CARD_FILE, version=number,
            params={k: v for k, v in params.items() if k != "history"}, signature=signature,
            lineage=lineage, device=params["device"], **fields)
