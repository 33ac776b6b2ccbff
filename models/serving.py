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

from fti import metrics
from fti.features.definitions import FEATURE_COLUMNS
from fti.models.registry import CHALLENGER, CHAMPION, ModelRegistry
from fti.models.trainers.xgboost_model import MODEL_FILE, load_model, predict_scores

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


class AliasHolder:
    """Holds the version one registry alias of a model points to; `refresh` follows it.

    A swap loads the new version aside and then replaces one reference, so readers of
    `current` never wait and a batch keeps the model it started with.
    """

    def __init__(self, registry: ModelRegistry, name: str, alias: str = CHAMPION) -> None:
        self.registry, self.name, self.alias = registry, name, alias
        self._current: ServingModel | None = None
        self._lock = threading.Lock()  # one load at a time; readers never wait

    @property
    def current(self) -> ServingModel | None:
        """The model to score with now (None before the alias points anywhere)."""
        return self._current

    def refresh(self) -> bool:
        """Load the alias' version if it differs from the one served; True if it swapped."""
        with self._lock:
            version = self.registry.alias(self.name, self.alias)
            if version is None or (self._current and self._current.version == version):
                return False
            model = load_serving_model(self.registry, self.name, version)
            previous, self._current = self._current, model
        self._swapped(version)
        log.info("serving %s %s v%d (was %s)", self.name, self.alias, version,
                 previous.version if previous else None)
        return True

    def _swapped(self, version: int) -> None:
        """Hook after a swap to `version` (metrics); nothing by default."""


class ChampionHolder(AliasHolder):
    """Holds the current champion of one model; `refresh` follows the `champion` alias."""

    def __init__(self, registry: ModelRegistry, name: str) -> None:
        super().__init__(registry, name, CHAMPION)

    def _swapped(self, version: int) -> None:
        metrics.CHAMPION_VERSION.labels(self.name).set(version)
        promoted = next((e.at for e in reversed(self.registry.history(self.name))
                         if e.alias == CHAMPION and e.to_version == version), None)
        if promoted is not None:
            metrics.CHAMPION_PROMOTED_TIMESTAMP.labels(self.name).set(promoted.timestamp())
        metrics.MODEL_SWAPS.labels(self.name).inc()


class ChallengerHolder(AliasHolder):
    """Holds the `challenger` of one model for shadow scoring; a load failure never raises.

    A version that cannot be loaded (sha256 mismatch, bad file) leaves no challenger: it is
    counted in `load_failures`, logged once, and not retried until the alias moves again.
    """

    def __init__(self, registry: ModelRegistry, name: str) -> None:
        super().__init__(registry, name, CHALLENGER)
        self.load_failures = 0
        self._failed_version: int | None = None

    def refresh(self) -> bool:
        """Follow the alias like `AliasHolder.refresh`, but swallow and count load errors."""
        version: int | None = None
        try:
            version = self.registry.alias(self.name, self.alias)
            if version is not None and version == self._failed_version:
                return False
            return super().refresh()
        except Exception as ex:  # noqa: BLE001 - shadow scoring must never stop serving
            self._current = None  # never shadow-score a stale challenger under a moved alias
            self._failed_version = version
            self.load_failures += 1
            count_shadow_error(self.name, "load")
            log.warning("shadow scoring off: cannot load %s challenger v%s: %s",
                        self.name, self._failed_version, ex)
            return False


def count_shadow_error(model: str, stage: str) -> None:
    """Count a shadow-scoring failure (`stage`: load | score) once `fti.metrics` defines
    `SHADOW_ERRORS` (`fti_shadow_errors_total{model, stage}`); a no-op until then."""
    counter = getattr(metrics, "SHADOW_ERRORS", None)
    if counter is not None:
        counter.labels(model, stage).inc()
