"""The trainer contract: fit on a split into a work directory, load what was saved, predict.

Every trainer (XGBoost, the PyTorch MLP) fits one `Split` on one device, writes its final
artifacts (safe formats only: XGBoost UBJ, safetensors + JSON) into ``workdir`` and reports them
in a `FitResult`; `Trainer.load` reads them back from a directory, so the training job scores a
candidate from its work directory and a champion from its registry version the same way.

>>> artifact_dir(["/tmp/run/model.safetensors", "/tmp/run/mlp.json"])
PosixPath('/tmp/run')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fti.features.training_data import Split
from fti.models.errors import TrainerError

#: Called after each finished epoch (or round) with its number (from 1) and its losses.
EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class FitResult:
    """What a fit wrote and learned.

    ``files`` are the paths of the artifacts to register (all in one directory), ``history``
    holds one value per epoch or boosting round (e.g. ``train_loss``, ``val_loss``), ``params``
    everything needed to rebuild and explain the model (hyperparameters, class weight, ...),
    including ``device``: where the fit really ran (XGBoost uses the CPU on a TPU host).
    """

    files: list[str]
    history: dict[str, list[float]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


class LoadedModel(Protocol):
    """A model loaded from its artifacts, ready to score."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Fraud scores in [0, 1] for rows of ``X`` (features in `FEATURE_COLUMNS` order)."""
        ...


class Trainer(Protocol):
    """One kind of model: ``kind`` names it in registry metadata; ``artifact_files`` it saves."""

    kind: str
    artifact_files: tuple[str, ...]

    def fit(
        self, split: Split, device: str, workdir: Path, progress: EpochCallback | None = None
    ) -> FitResult:
        """Train on ``split.train`` (early stopping on ``split.validation``) into ``workdir``."""
        ...

    def predict(self, source: Path | Sequence[str | Path], X: np.ndarray) -> np.ndarray:
        """Load the model in ``source`` (a directory or its artifact files) and score ``X``."""
        ...

    def load(self, path_dir: Path) -> LoadedModel:
        """Load the artifacts in ``path_dir`` (check their sha256 first, e.g. via the registry)."""
        ...


def artifact_dir(source: Path | str | Sequence[str | Path]) -> Path:
    """The directory holding a model: ``source`` itself, or the one parent of its files."""
    if isinstance(source, str | Path):
        return Path(source)
    parents = {Path(name).parent for name in source}
    if len(parents) != 1:
        raise TrainerError(
            f"a model's files must sit in one directory, got {sorted(map(str, source))}"
        )
    return parents.pop()
