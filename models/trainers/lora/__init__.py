"""Pairwise LoRA: which of two responses to a prompt wins, or whether they tie.

The ``lora`` trainer kind (`LoraTrainer`) keeps the trainer contract
(`fti.models.trainers.protocol`): it fits ``preference`` models whose features are three text
columns (prompt, response A, response B) and serves through `load_serving_model` like any
other kind. The modules, by job: `params` (hyperparameters, file names), `base_model` (the
sha256-checked base encoder and tokenizer), `text` (pairs of texts, encoded), `scorer` (the
adapted encoder, its head and the pair logits), `loop` (batches and the training step),
`model` (a loaded model) and `trainer` (fit and load).
"""

from __future__ import annotations

from fti.models.trainers.lora.params import LoraParams
from fti.models.trainers.lora.trainer import LoraTrainer

__all__ = ["LoraParams", "LoraTrainer"]
