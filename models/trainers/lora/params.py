"""Hyperparameters of the pairwise LoRA trainer and the names of the files it writes.

>>> p = LoraParams(steps=10, rank=4)
>>> p.steps, p.rank, p.outcomes
(10, 4, ('A', 'B', 'tie'))
>>> LoraParams(outcomes=("A", "A", "tie"))
Traceback (most recent call last):
...
fti.errors.ConfigError: lora: outcomes must be three different labels (first wins, ...
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from fti.errors import ConfigError

ADAPTER_FILE = "adapter.safetensors"
HEAD_FILE = "head.safetensors"
CONFIG_FILE = "lora.json"


@dataclass(frozen=True)
class LoraParams:
    """How the adapter is shaped and trained.

    ``base_model`` is a local encoder directory (None: the bundled MiniLM) and ``base_sha256``
    its expected weights hash (pinned for the bundled one). LoRA of ``rank``/``alpha`` adapts
    ``target_modules`` of the top ``top_layers`` layers only. Training runs ``steps`` AdamW
    steps of ``batch_size`` pairs (the pairs and their A/B swaps, shuffled by ``seed``) at
    ``lr`` after ``warmup_steps``, then a linear decay to zero. The frozen lower layers'
    output is computed once per text when it fits in ``cache_mb``, else at every step.
    ``outcomes`` are the label values meaning: the first response wins, the second wins, a
    tie.
    """

    base_model: str | None = None
    base_sha256: str | None = None
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    top_layers: int = 2
    target_modules: tuple[str, ...] = ("query", "value")
    steps: int = 60
    batch_size: int = 16
    lr: float = 2e-3
    warmup_steps: int = 5
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 96
    eval_batch_size: int = 64
    cache_mb: float = 1024.0
    seed: int = 0
    outcomes: tuple[Any, ...] = ("A", "B", "tie")

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_modules", tuple(self.target_modules))
        object.__setattr__(self, "outcomes", tuple(self.outcomes))
        problems = [name for name, ok in (
            ("rank >= 1", self.rank >= 1), ("alpha > 0", self.alpha > 0),
            ("0 <= dropout < 1", 0 <= self.dropout < 1), ("top_layers >= 1", self.top_layers >= 1),
            ("steps >= 1", self.steps >= 1), ("batch_size >= 1", self.batch_size >= 1),
            ("lr > 0", self.lr > 0), ("warmup_steps >= 0", self.warmup_steps >= 0),
            ("max_length >= 8", self.max_length >= 8),
            ("eval_batch_size >= 1", self.eval_batch_size >= 1),
            ("target_modules not empty", bool(self.target_modules)),
        ) if not ok]
        if problems:
            raise ConfigError(f"lora: invalid hyperparameters, need {', '.join(problems)}")
        if len(self.outcomes) != 3 or len(set(self.outcomes)) != 3:
            raise ConfigError("lora: outcomes must be three different labels (first wins, "
                              f"second wins, tie), got {self.outcomes}")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready hyperparameters (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
