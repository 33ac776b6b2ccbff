"""The training job: offline store → point-in-time dataset → XGBoost → gates → registry → events.

One run reads the offline store, builds and records a dataset version, trains a candidate,
scores it and the current champion on the same test split, registers the candidate with its
model card, and promotes it only if it passes the gates.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb
from tqdm import tqdm

from features.definitions import FEATURE_COLUMNS
from features.training_data import TrainingDataset, build_dataset, save_dataset_version
from fti.errors import FtiError
from fti.events import RegistryEvent
from fti.settings import Settings
from models.devices import select_device
from models.evaluation import evaluate
from models.gates import GateResult, check_gates
from models.model_card import CARD_FILE, ModelCardInfo, write_model_card
from models.registry import CHAMPION, ModelRegistry, ModelVersion
from models.xgboost_trainer import (
    MODEL_FILE,
    features_matrix,
    labels_vector,
    load_model,
    predict_scores,
    save_model,
    train_xgboost,
    xgboost_params,
)

logger = logging.getLogger(__name__)

#: Fewest training rows the job accepts.
MIN_TRAIN_ROWS = 50
_STEPS = 7

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

    @classmethod
    def of(
        cls, version: ModelVersion, dataset_version: int, device: str, duration_s: float
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
) -> TrainingResult:
    """Train, evaluate, gate and register one candidate; publish its registry events.

    Raises FtiError (before anything is registered) when the data cannot train a model.
    """
    start = time.monotonic()
    steps = _Steps(progress)
    try:
        dataset, dataset_version = _prepare_dataset(settings, steps)
        device = select_device(settings.training.device)
        booster = train_xgboost(dataset.split, settings.training, device)
        steps.done(
            "trained candidate on %s: %d rows, %d trees (best validation round)",
            device,
            dataset.split.train.num_rows,
            booster.num_boosted_rounds(),
        )
        outcome = _evaluate(settings, dataset, booster, steps)
        version = _register(settings, dataset, dataset_version, device, booster, outcome, reason)
        steps.done(
            "registered %s v%d (promoted: %s)", version.model, version.version, version.promoted
        )
        _announce(settings, version, publish, steps)
    finally:
        steps.close()
    return TrainingResult.of(version, dataset_version, device, time.monotonic() - start)


def _prepare_dataset(settings: Settings, steps: _Steps) -> tuple[TrainingDataset, int]:
    dataset = build_dataset(settings.offline_dir, settings.training)
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


def check_trainable(dataset: TrainingDataset) -> None:
    """Refuse (FtiError) a dataset whose train split is too small or has a single class."""
    train = dataset.record.splits["train"]
    hint = "wait for more labels, or lower training.window_labels / the split fractions"
    if train.rows < MIN_TRAIN_ROWS:
        raise FtiError(
            f"train split has {train.rows} rows, need at least {MIN_TRAIN_ROWS} "
            f"({dataset.record.rows} labelled rows in total); {hint}"
        )
    if train.positives == 0 or train.positives == train.rows:
        kind = "fraud" if train.positives == 0 else "legitimate"
        raise FtiError(
            f"train split ({train.rows} rows) has no {kind} labels; a classifier needs both; {hint}"
        )
    if dataset.split.test.num_rows == 0:
        raise FtiError(f"test split is empty ({dataset.record.rows} labelled rows); {hint}")


@dataclass(frozen=True)
class _Outcome:
    metrics: dict[str, Any]
    champion_version: int | None
    champion_metrics: dict[str, Any] | None
    gates: GateResult


def _evaluate(
    settings: Settings, dataset: TrainingDataset, booster: xgb.Booster, steps: _Steps
) -> _Outcome:
    cfg = settings.training
    X, y = features_matrix(dataset.split.test), labels_vector(dataset.split.test)
    threshold = settings.inference.threshold
    metrics = evaluate(y, predict_scores(booster, X), threshold)
    steps.done(
        "candidate on test: roc_auc %.4f, f1 %.4f, %d rows",
        metrics["roc_auc"],
        metrics["f1"],
        metrics["rows"],
    )
    champion_version, champion_metrics = _evaluate_champion(settings, X, y, threshold)
    if champion_version is None:
        steps.done("no champion yet; the candidate is gated on thresholds only")
    else:
        steps.done(
            "champion v%d on the same test: roc_auc %.4f",
            champion_version,
            champion_metrics["roc_auc"],
        )
    gates = check_gates(metrics, champion_metrics, cfg.min_auc, cfg.max_auc_regression)
    steps.done(
        "gates %s%s",
        "passed" if gates.passed else "failed",
        "" if gates.passed else ": " + "; ".join(gates.reasons),
    )
    return _Outcome(metrics, champion_version, champion_metrics, gates)


def _evaluate_champion(
    settings: Settings, X: np.ndarray, y: np.ndarray, threshold: float
) -> tuple[int | None, dict[str, Any] | None]:
    """Score the current champion (sha256 checked on load) on the candidate's test split."""
    registry = ModelRegistry(settings.registry_dir)
    name = settings.training.model_name
    version = registry.alias(name, CHAMPION)
    if version is None:
        return None, None
    champion = load_model(registry.artifact_path(name, version, MODEL_FILE))
    return version, evaluate(y, predict_scores(champion, X), threshold)


def _register(
    settings: Settings,
    dataset: TrainingDataset,
    dataset_version: int,
    device: str,
    booster: xgb.Booster,
    outcome: _Outcome,
    reason: str,
) -> ModelVersion:
    registry = ModelRegistry(settings.registry_dir)
    name, number = settings.training.model_name, registry.next_version(settings.training.model_name)
    params = xgboost_params(dataset.split, settings.training, device)
    params |= {"trees": booster.num_boosted_rounds(), "feature_columns": list(FEATURE_COLUMNS)}
    fields: dict[str, Any] = {
        "metrics": outcome.metrics,
        "gates": outcome.gates,
        "params": params,
        "dataset": {"version": dataset_version, **dataset.record.model_dump(mode="json")},
        "champion_metrics_on_same_test": outcome.champion_metrics,
        "champion_version": outcome.champion_version,
        "reason": reason,
    }
    card = ModelCardInfo(model=name, version=number, created_at=datetime.now(UTC), **fields)
    with tempfile.TemporaryDirectory(prefix="fti-train-") as staging:
        save_model(booster, Path(staging) / MODEL_FILE)
        write_model_card(Path(staging) / CARD_FILE, card)
        return registry.register(
            name,
            Path(staging),
            promoted=outcome.gates.passed,
            card=CARD_FILE,
            version=number,
            **fields,
        )


def _announce(
    settings: Settings, version: ModelVersion, publish: Publish | None, steps: _Steps
) -> None:
    """Promote a passing version, then publish "registered" (and "promoted") events."""
    registry = ModelRegistry(settings.registry_dir)
    events = [registry.event(version.model, version.version, "registered")]
    if version.promoted:
        registry.set_alias(version.model, CHAMPION, version.version)
        events.append(registry.event(version.model, version.version, "promoted", CHAMPION))
    for event in events:
        if publish is not None:
            publish(event)
    steps.done("published %s for %s v%d", [e.event for e in events], version.model, version.version)
