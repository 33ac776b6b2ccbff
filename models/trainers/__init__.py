"""Trainers behind one contract (`fti.models.trainers.base.Trainer`), chosen by kind.

Each trainer module is imported only when its kind is asked for, so XGBoost jobs never pay
for importing torch.

>>> trainer_for("xgboost", {"n_estimators": 5}).kind
'xgboost'
>>> trainer_for("svm")
Traceback (most recent call last):
...
fti.errors.ConfigError: no trainer of kind 'svm'; known kinds: mlp, xgboost
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from fti.errors import ConfigError
from fti.models.registry import ModelRegistry
from fti.models.trainers.base import EpochCallback, FitResult, LoadedModel, Trainer, artifact_dir

__all__ = [
    "TRAINERS",
    "EpochCallback",
    "FitResult",
    "LoadedModel",
    "Trainer",
    "load_version",
    "trainer_for",
]

#: Trainer kind → "module:class" implementing it.
TRAINERS: dict[str, str] = {
    "mlp": "fti.models.trainers.mlp:MLPTrainer",
    "xgboost": "fti.models.trainers.xgboost:XGBoostTrainer",
}


def trainer_for(kind: str, hyperparameters: Mapping[str, Any] | None = None) -> Trainer:
    """A trainer of ``kind`` built from ``hyperparameters`` (defaults when omitted)."""
    target = TRAINERS.get(kind)
    if target is None:
        known = ", ".join(sorted(TRAINERS))
        raise ConfigError(f"no trainer of kind {kind!r}; known kinds: {known}")
    module, name = target.split(":")
    cls = getattr(importlib.import_module(module), name)
    return cls(**dict(hyperparameters or {}))


def load_version(registry: ModelRegistry, model: str, version: int) -> LoadedModel:
    """Load a registered version with the trainer kind in its metadata (default "xgboost").

    Every artifact file the trainer reads has its sha256 checked by the registry first.
    """
    kind = registry.get(model, version).params.get("trainer", "xgboost")
    trainer = trainer_for(kind)
    paths = [registry.artifact_path(model, version, name) for name in trainer.artifact_files]
    return trainer.load(artifact_dir(paths))
