"""A loaded pairwise LoRA model: reads (rows, 3) texts, returns outcome probabilities.

Loading reads only JSON and safetensors, and checks the base encoder's weights against the
sha256 recorded at training before using them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fti.models.errors import TrainerError
from fti.models.trainers.base import ArtifactSignature, read_signature
from fti.models.trainers.lora.base_model import (
    TOKENIZER_FILE,
    base_model_path,
    load_tokenizer,
    verify_base_model,
)
from fti.models.trainers.lora.params import CONFIG_FILE, LoraParams
from fti.models.trainers.lora.scorer import PairScorer, load_scorer
from fti.models.trainers.lora.text import encode, pair_texts


def outcome_columns(outcomes: tuple[Any, ...], classes: tuple[Any, ...] | None) -> list[int]:
    """For each class (probability column), the index of its outcome: 0 first wins, 1 second
    wins, 2 tie; TrainerError unless the classes are the three outcomes.

    >>> outcome_columns(("A", "B", "tie"), ("A", "B", "tie")), outcome_columns((1, 2, 0), (0, 1, 2))
    ([0, 1, 2], [2, 0, 1])
    """
    if classes is None or sorted(map(repr, classes)) != sorted(map(repr, outcomes)):
        raise TrainerError(f"a pairwise model's label must hold exactly the outcomes "
                           f"{list(outcomes)} (first wins, second wins, tie); it holds "
                           f"{None if classes is None else list(classes)}: set params "
                           "outcomes=[...] to the label's values")
    return [list(outcomes).index(c) for c in classes]


class PairModel:
    """The scorer with its tokenizer: ``predict(X)`` of (rows, 3) texts (prompt, response A,
    response B, in signature order) is (rows, 3) probabilities in ``signature.classes`` order."""

    def __init__(self, scorer: PairScorer, tokenizer: Any, params: LoraParams,
                 signature: ArtifactSignature, device: torch.device) -> None:
        self.scorer, self.tokenizer, self.params = scorer, tokenizer, params
        self.signature, self.device = signature, device
        self.columns = outcome_columns(params.outcomes, signature.classes)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Outcome probabilities of each row of ``X``."""
        X = np.asarray(X, dtype=object)
        if X.ndim != 2 or X.shape[1] != len(self.signature.features):
            raise TrainerError(
                f"expected a matrix of {len(self.signature.features)} columns "
                f"{list(self.signature.features)} (in this order), got shape {X.shape}")
        texts = pair_texts(X)
        out = np.empty((len(texts), 3), dtype=np.float32)
        self.scorer.eval()
        with torch.inference_mode():
            for start in range(0, len(texts), self.params.eval_batch_size):
                rows = list(range(start, min(start + self.params.eval_batch_size, len(texts))))
                batch = encode(self.tokenizer, texts.take(rows)).to(self.device)
                probabilities = torch.softmax(self.scorer(batch).float(), dim=1)
                out[start:start + len(rows)] = probabilities.cpu().numpy()
        return out[:, self.columns]


def read_config(directory: Path) -> dict[str, Any]:
    """The ``lora.json`` a fit wrote (hyperparameters, base model and its sha256)."""
    path = Path(directory) / CONFIG_FILE
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as ex:
        raise TrainerError(f"cannot read {path}: {ex}") from ex
    if not isinstance(document, dict) or not {"params", "base_sha256"} <= set(document):
        raise TrainerError(f"{path} is not a LoRA config (params, base_sha256)")
    return document


def load_pair_model(directory: Path, device: str = "cpu") -> PairModel:
    """The model saved in ``directory``: its base encoder sha256-checked, then the adapter,
    the head and the tokenizer read from safetensors and JSON."""
    directory = Path(directory)
    config = read_config(directory)
    params = LoraParams(**config["params"])
    base = base_model_path(params.base_model)
    verify_base_model(base, config["base_sha256"])
    scorer = load_scorer(base, params, directory).to(torch.device(device))
    tokenizer = load_tokenizer(directory / TOKENIZER_FILE, params.max_length)
    return PairModel(scorer, tokenizer, params, read_signature(directory), torch.device(device))
