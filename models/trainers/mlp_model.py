"""The MLP itself: its network, input standardization, and its safe on-disk form.

A saved MLP is ``model.safetensors`` (the network's tensors) plus ``mlp.json`` (architecture,
feature order, standardization mean/std); nothing is pickled, and loading reads safetensors only.

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

from fti.features.definitions import FEATURE_COLUMNS
from fti.models.errors import TrainerError

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "mlp.json"
FORMAT = "fti-mlp/1"


def build_network(n_inputs: int, hidden_sizes: Sequence[int], dropout: float) -> nn.Sequential:
    """Linear → ReLU → Dropout per hidden layer, then one logit.

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
    layers.append(nn.Linear(width, 1))
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
class LoadedMLP:
    """A trained MLP on the CPU with its standardization; scores rows of features."""

    network: nn.Sequential
    standardizer: Standardizer
    config: dict[str, Any]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Fraud probabilities (float32) for rows of ``X`` in `FEATURE_COLUMNS` order."""
        n = len(self.config["feature_columns"])
        if X.ndim != 2 or X.shape[1] != n:
            raise TrainerError(f"expected a (rows, {n}) matrix, got shape {X.shape}")
        if X.shape[0] == 0:
            return np.empty(0, dtype=np.float32)
        inputs = torch.from_numpy(self.standardizer.transform(X))
        with torch.no_grad():
            logits = self.network(inputs).squeeze(1)
        return torch.sigmoid(logits).numpy().astype(np.float32)


def save_mlp(
    directory: Path, network: nn.Module, standardizer: Standardizer, config: dict[str, Any]
) -> list[str]:
    """Write ``model.safetensors`` and ``mlp.json`` into ``directory``; return their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in network.state_dict().items()}
    save_file(tensors, str(directory / MODEL_FILE))
    document = {
        "format": FORMAT,
        **config,
        "feature_columns": list(FEATURE_COLUMNS),
        "mean": standardizer.mean.tolist(),
        "std": standardizer.std.tolist(),
    }
    (directory / CONFIG_FILE).write_text(json.dumps(document, indent=1))
    return [str(directory / MODEL_FILE), str(directory / CONFIG_FILE)]


def load_mlp(directory: Path) -> LoadedMLP:
    """Load an MLP saved by `save_mlp` (safetensors only; check sha256 first, e.g. the registry)."""
    directory = Path(directory)
    config = json.loads((directory / CONFIG_FILE).read_text())
    if config.get("format") != FORMAT:
        raise TrainerError(
            f"{directory / CONFIG_FILE} is not an {FORMAT} file: {config.get('format')}"
        )
    if config["feature_columns"] != list(FEATURE_COLUMNS):
        raise TrainerError(
            f"MLP in {directory} was trained on features {config['feature_columns']}, "
            f"this code computes {list(FEATURE_COLUMNS)}; retrain it"
        )
    network = build_network(len(config["feature_columns"]), config["hidden_sizes"], 0.0)
    network.load_state_dict(load_file(str(directory / MODEL_FILE), device="cpu"), strict=True)
    network.eval()
    standardizer = Standardizer(
        np.asarray(config["mean"], dtype=np.float32), np.asarray(config["std"], dtype=np.float32)
    )
    return LoadedMLP(network, standardizer, config)
