"""The model an inference process serves, and how it is swapped without stopping.

`load_serving_model` loads any registered version through the trainer recorded in its
metadata (XGBoost, the MLP, or a user's ``module:Class``), every file sha256-checked, and
warms it up; a `ServingModel` scores feature matrices and turns scores into decisions of its
task. A swap loads and warms the new model aside, then replaces one reference; a batch being
scored keeps the model it started with, so no event is dropped or scored twice, and the
champion may change kind (XGBoost → MLP) in a swap.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from fti import metrics
from fti.models.errors import TrainerError
from fti.models.registry import CHALLENGER, CHAMPION, ModelRegistry, ModelVersion
from fti.models.trainers import LoadedModel, load_version
from fti.models.trainers.base import SIGNATURE_FILE, TEXT_INPUT
from fti.models.trainers.xgboost_model import MODEL_FILE

__all__ = [
    "MODEL_FILE",
    "AliasHolder",
    "ChallengerHolder",
    "ChampionHolder",
    "ServingModel",
    "count_shadow_error",
    "load_serving_model",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingModel:
    """A loaded, warmed-up model version and what it reads and returns.

    ``features`` are the matrix columns in order; ``classes`` the class values of a
    multiclass model (column order of its probabilities). ``reads_text``: the model reads
    the feature values as they are (an object matrix of texts), not a float32 matrix.

    >>> class Half:
    ...     def predict(self, X):
    ...         return np.full(len(X), 0.5, dtype=np.float32)
    >>> m = ServingModel("m", 1, "custom", "binary", ("x",), None, Half())
    >>> m.decide(m.score(np.zeros((2, 1), dtype=np.float32)), 0.5)
    [1, 1]
    >>> ServingModel("m", 1, "mlp", "multiclass", ("x",), ("cat", "dog"), Half()).decide(
    ...     np.array([[0.2, 0.8], [0.9, 0.1]]), 0.5)
    ['dog', 'cat']
    """

    name: str
    version: int
    kind: str
    task: str
    features: tuple[str, ...]
    classes: tuple[Any, ...] | None
    model: LoadedModel
    reads_text: bool = False

    def warm_up(self) -> None:
        """Score one placeholder row, so the first real batch does not pay for lazy setup."""
        if self.reads_text:
            self.score(np.full((1, len(self.features)), "warm up", dtype=object))
        else:
            self.score(np.zeros((1, len(self.features)), dtype=np.float32))

    def score(self, matrix: np.ndarray) -> np.ndarray:
        """Scores of rows of ``matrix`` (columns in `features` order): P(positive) (binary),
        class probabilities (rows, classes) (multiclass), values (regression)."""
        return np.asarray(self.model.predict(matrix))

    def decide(self, scores: np.ndarray, threshold: float = 0.5) -> list[Any]:
        """One decision per row of ``scores``: binary 1 when the score is >= ``threshold``
        (else 0); multiclass the class value of the highest probability; regression the value.
        """
        scores = np.asarray(scores)
        if self.task == "binary":
            return [int(s >= threshold) for s in scores.reshape(-1)]
        if self.task == "regression":
            return [float(v) for v in scores.reshape(-1)]
        if scores.ndim != 2:
            raise TrainerError(f"a {self.task} model scores (rows, classes), got {scores.shape}")
        best = np.argmax(scores, axis=1)
        if self.classes is None:
            return [int(i) for i in best]
        return [self.classes[int(i)] for i in best]


def load_serving_model(registry: ModelRegistry, name: str, version: int) -> ServingModel:
    """Load a registry version (sha256 checked) with the trainer kind of its metadata and warm
    it up with one prediction of a placeholder row (zeros, or texts for a model whose
    signature says ``"input": "text"``).

    Versions without a loadable artifact raise an error naming the kind.
    """
    metadata = registry.get(name, version)
    model = load_version(registry, name, version)
    signature = getattr(model, "signature", None)
    if signature is None:
        raise TrainerError(f"{name} v{version}: the loaded model has no signature")
    features = tuple(signature.features)
    if SIGNATURE_FILE not in metadata.files:
        features = _recorded_features(metadata) or features  # registered before signatures
    kind = str(metadata.params.get("trainer") or signature.kind)
    reads_text = signature.extra.get("input") == TEXT_INPUT
    served = ServingModel(name, version, kind, signature.task, features, signature.classes, model,
                          reads_text)
    served.warm_up()
    return served


def _recorded_features(metadata: ModelVersion) -> tuple[str, ...] | None:
    """The input columns a version's metadata names (its signature, else its params)."""
    if metadata.signature is not None and metadata.signature.inputs:
        return tuple(column.name for column in metadata.signature.inputs)
    columns = metadata.params.get("feature_columns")
    return tuple(columns) if columns else None


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
        log.info("serving %s %s v%d (%s, was %s)", self.name, self.alias, version, model.kind,
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
