"""The model an inference process serves, and how it is swapped without stopping.

A swap loads and warms the new model aside, then replaces one reference; a batch being
scored keeps the model it started with, so no event is dropped or scored twice.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np
import xgboost as xgb

from features.definitions import FEATURE_COLUMNS
from fti import metrics
from models.registry import CHAMPION, ModelRegistry
from models.xgboost_trainer import MODEL_FILE, load_model, predict_scores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingModel:
    """A loaded, warmed-up model version."""

    name: str
    version: int
    booster: xgb.Booster

    def score(self, matrix: np.ndarray) -> np.ndarray:
        """Fraud scores for rows of features in `FEATURE_COLUMNS` order."""
        return predict_scores(self.booster, matrix)


def load_serving_model(registry: ModelRegistry, name: str, version: int) -> ServingModel:
    """Load a registry version (sha256 checked) and warm it up with one prediction."""
    booster = load_model(registry.artifact_path(name, version, MODEL_FILE))
    model = ServingModel(name, version, booster)
    model.score(np.zeros((1, len(FEATURE_COLUMNS)), dtype=np.float32))
    return model


class ChampionHolder:
    """Holds the current champion of one model; `refresh` follows the registry alias."""

    def __init__(self, registry: ModelRegistry, name: str) -> None:
        self.registry, self.name = registry, name
        self._current: ServingModel | None = None
        self._lock = threading.Lock()  # one load at a time; readers never wait

    @property
    def current(self) -> ServingModel | None:
        """The model to score with now (None before any champion exists)."""
        return self._current

    def refresh(self) -> bool:
        """Load the alias' version if it differs from the one served; True if it swapped."""
        with self._lock:
            version = self.registry.alias(self.name)
            if version is None or (self._current and self._current.version == version):
                return False
            model = load_serving_model(self.registry, self.name, version)
            previous, self._current = self._current, model
        metrics.CHAMPION_VERSION.labels(self.name).set(version)
        promoted = next((e.at for e in reversed(self.registry.history(self.name))
                         if e.alias == CHAMPION and e.to_version == version), None)
        if promoted is not None:
            metrics.CHAMPION_PROMOTED_TIMESTAMP.labels(self.name).set(promoted.timestamp())
        metrics.MODEL_SWAPS.labels(self.name).inc()
        log.info(
            "serving %s v%d (was %s)", self.name, version, previous.version if previous else None
        )
        return True
