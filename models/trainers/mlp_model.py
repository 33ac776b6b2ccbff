"""The MLP itself: its network, input standardization, and its safe on-disk form.

A saved MLP is ``model.safetensors`` (the network's tensors) plus ``mlp.json`` (architecture,
task, feature order, standardization mean/std, and for regression the target's mean/std);
nothing is pickled, and loading reads safetensors only. The network has one output (binary:
a logit; regression: the standardized target) or one per class (multiclass: logits).

>>> s = Standardizer.fit(np.array([[1.0, np.nan], [3.0, 4.0]], dtype=np.float32))
>>> s.transform(np.array([[2.0, np.nan]], dtype=np.float32)).tolist()
[[0.0, 0.0]]
>>> pos_weight(np.array([0, 0, 0, 1]))
3.0
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from fti.models.errors import TrainerError
from fti.models.trainers.base import (
    SIGNATURE_FILE,
    ArtifactSignature,
    ModelInputs,
    check_matrix,
    read_signature,
)

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "mlp.json"
FORMAT = "fti-mlp/1"


def build_network(
    n_inputs: int, hidden_sizes: Sequence[int], dropout: float, n_outputs: int = 1
) -> nn.Sequential:
    """Linear → ReLU → Dropout per hidden layer, then ``n_outputs`` outputs (logits or values).

    >>> build_network(12, [8], 0.0)
    Sequential(
      (0): Linear(in_features=12, out_features=8, bias=True)
      (1): ReLU()
      (2): Dropout(p=0.0, inplace=False)
      (3): Linear(in_features=8, out_features=1, bias=True)
    )
    """
    layers: list[nn.Module] = []
    width = n_inputs
    for size in hidden_sizes:
        layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
        width = size
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class Standardizer:
    """Per-feature mean and std from the train split; missing values become the mean (0)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> Standardizer:
        """Mean and std of each column, ignoring NaN; constant or empty columns get std 1."""
        seen = ~np.isnan(X)
        counts = seen.sum(axis=0)
        filled = np.where(seen, X, 0.0).astype(np.float64)
        mean = filled.sum(axis=0) / np.maximum(counts, 1)
        var = (np.where(seen, X - mean, 0.0) ** 2).sum(axis=0) / np.maximum(counts, 1)
        std = np.sqrt(var)
        std[std < 1e-12] = 1.0
        return cls(mean.astype(np.float32), std.astype(np.float32))

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardized float32 copy of ``X``; NaN (a missing feature) becomes 0."""
        z = (np.asarray(X, dtype=np.float32) - self.mean) / self.std
        return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def pos_weight(y: np.ndarray) -> float:
    """Weight of the positive class for BCE: negatives / positives (1.0 if no positives)."""
    positives = int(np.sum(y == 1))
    negatives = int(len(y) - positives)
    return negatives / positives if positives else 1.0


@dataclass(frozen=True)
class TargetScale:
    """How a regression target was standardized for training: ``(y - mean) / std``."""

    mean: float = 0.0
    std: float = 1.0

    @classmethod
    def fit(cls, y: np.ndarray) -> TargetScale:
        """Mean and std of the train targets (std 1 for a constant target).

        >>> TargetScale.fit(np.array([1.0, 3.0]))
        TargetScale(mean=2.0, std=1.0)
        """
        std = float(np.std(y))
        return cls(float(np.mean(y)), std if std > 1e-12 else 1.0)

    def transform(self, y: np.ndarray) -> np.ndarray:
        """Standardized float32 targets."""
        return ((np.asarray(y, dtype=np.float64) - self.mean) / self.std).astype(np.float32)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Targets back in their own unit, as float32."""
        return (np.asarray(z, dtype=np.float64) * self.std + self.mean).astype(np.float32)


@dataclass(frozen=True)
class LoadedMLP:
    """A trained MLP on the CPU with its standardization and signature; scores rows."""

    network: nn.Sequential
    standardizer: Standardizer
    config: dict[str, Any]
    signature: ArtifactSignature

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Float32 P(positive) (binary), class probabilities (multiclass) or values
        (regression) for rows of ``X`` in signature order."""
        X = check_matrix(X, self.signature.features)
        task = self.signature.task
        outputs = int(self.config.get("n_outputs", 1))
        if X.shape[0] == 0:
            return np.empty((0, outputs) if task == "multiclass" else 0, dtype=np.float32)
        inputs = torch.from_numpy(self.standardizer.transform(X))
        with torch.no_grad():
            out = self.network(inputs)
        if task == "multiclass":
            return torch.softmax(out, dim=1).numpy().astype(np.float32)
        if task == "regression":
            scale = TargetScale(self.config["target_mean"], self.config["target_std"])
            return scale.inverse(out.squeeze(1).numpy())
        return torch.sigmoid(out.squeeze(1)).numpy().astype(np.float32)


def save_mlp(
    directory: Path, network: nn.Module, standardizer: Standardizer, config: dict[str, Any],
    inputs: ModelInputs,
) -> list[str]:
    """Write ``model.safetensors`` and ``mlp.json`` into ``directory``; return their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in network.state_dict().items()}
    save_file(tensors, str(directory / MODEL_FILE))
    document = {
        "format": FORMAT,
        **config,
        "task": inputs.task,
        "feature_columns": list(inputs.features),
        "classes": None if inputs.classes is None else list(inputs.classes),
        "mean": standardizer.mean.tolist(),
        "std": standardizer.std.tolist(),
    }
    (directory / CONFIG_FILE).write_text(json.dumps(document, indent=1))
    return [str(directory / MODEL_FILE), str(directory / CONFIG_FILE)]


def load_mlp(directory: Path) -> LoadedMLP:
    """Load an MLP saved by `save_mlp` (safetensors only; check sha256 first, e.g. the registry).

    Its ``signature.json`` must agree with ``mlp.json``; an MLP saved before signatures existed
    is a binary model of the features its ``mlp.json`` lists.
    """
    directory = Path(directory)
    config = json.loads((directory / CONFIG_FILE).read_text())
    if config.get("format") != FORMAT:
        raise TrainerError(
            f"{directory / CONFIG_FILE} is not an {FORMAT} file: {config.get('format')}"
        )
    features = tuple(config["feature_columns"])
    task = config.get("task", "binary")
    classes = config.get("classes")
    if (directory / SIGNATURE_FILE).is_file():
        signature = read_signature(directory)
        if signature.kind != "mlp" or signature.features != features or signature.task != task:
            raise TrainerError(
                f"{directory}: {SIGNATURE_FILE} ({signature.kind}, {signature.task}, "
                f"{list(signature.features)}) does not match {CONFIG_FILE} (mlp, {task}, "
                f"{list(features)})"
            )
    else:
        inputs = ModelInputs(features, "label", task, None if classes is None else tuple(classes))
        signature = ArtifactSignature("mlp", inputs, (MODEL_FILE, CONFIG_FILE), {"legacy": True})
    network = build_network(len(features), config["hidden_sizes"], 0.0,
                            int(config.get("n_outputs", 1)))
    network.load_state_dict(load_file(str(directory / MODEL_FILE), device="cpu"), strict=True)
    network.eval()
    standardizer = Standardizer(
        np.asarray(config["mean"], dtype=np.float32), np.asarray(config["std"], dtype=np.float32)
    )
    return LoadedMLP(network, standardizer, config, signature)
