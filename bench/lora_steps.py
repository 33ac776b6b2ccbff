"""LoRA training speed: the ``lora`` trainer's steps (`LoraTrainer.fit`) against a bare PEFT
loop on the same base model, adapters, batches and optimizer, in the same run.

The bare loop is what a tutorial writes: the encoder with the same LoRA adapters, a linear
head, each step a full forward of the batch's encoded pairs, the same pair logits and cross
entropy, backward, AdamW step. Both see the same batches (`PairBatches` with the same seed:
the pairs and their A/B swaps); the bare loop's batches are tokenised before it is timed.
Steady-state steps/s of each are measured between the first and the last step (model
loading and the trainer's one pass of the frozen lower layers excluded). The trainer runs
the frozen lower layers once per text and only the adapted layers per step, so a ratio
above 1 is that saving. `ratio` = ours / bare. One JSON line.
Usage: fti bench lora-steps --steps 30 --batch-size 16
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F  # noqa: N812

from fti.features.dataset_records import Split
from fti.models.trainers import ModelInputs, trainer_for
from fti.models.trainers.lora.base_model import TOKENIZER_FILE, bundled_model_path, load_tokenizer
from fti.models.trainers.lora.loop import PairBatches, batch_texts
from fti.models.trainers.lora.params import LoraParams
from fti.models.trainers.lora.scorer import build_scorer, pair_logits
from fti.models.trainers.lora.text import encode, pair_texts

COLUMNS = ("prompt", "first", "second")
OUTCOMES = ("A", "B", "tie")
_WORDS = ("the", "a", "river", "cook", "slowly", "bright", "question", "answer", "green",
          "train", "model", "sleep", "water", "friendly", "never", "always", "because")


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."


def pairs_table(count: int, seed: int = 5) -> pa.Table:
    """``count`` pairs of random sentences (a prompt, two responses, an outcome)."""
    rng = random.Random(seed)
    rows = [(_sentence(rng, 8), _sentence(rng, rng.randint(10, 40)),
             _sentence(rng, rng.randint(10, 40)), rng.choice(OUTCOMES)) for _ in range(count)]
    return pa.table({name: [r[i] for r in rows] for i, name in
                     enumerate((*COLUMNS, "outcome"))})


def ours(table: pa.Table, params: LoraParams) -> float:
    """Steady-state steps/s of the trainer's fit (CPU, no validation split)."""
    inputs = ModelInputs(COLUMNS, "outcome", "preference")
    stamps: list[float] = []
    trainer = trainer_for("lora", inputs, params.as_dict())
    with tempfile.TemporaryDirectory(prefix="fti-bench-lora-") as workdir:
        trainer.fit(Split(table, table.slice(0, 0), table.slice(0, 0)), inputs, "cpu",
                    Path(workdir), progress=lambda step, losses: stamps.append(time.perf_counter()))
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def bare(table: pa.Table, params: LoraParams) -> float:
    """Steady-state steps/s of a bare PEFT loop on the same batches."""
    base = bundled_model_path()
    model = build_scorer(base, params)  # the same encoder, adapters and head, freshly seeded
    encoder, head = model.encoder, model.head
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=params.lr)
    tokenizer = load_tokenizer(base / TOKENIZER_FILE, params.max_length)
    texts = pair_texts(np.column_stack([table[c].to_numpy(zero_copy_only=False)
                                        for c in COLUMNS]))
    labels = np.array([OUTCOMES.index(v) for v in table["outcome"].to_pylist()])
    order = PairBatches(labels, params.batch_size, params.seed)
    batches = []
    for step in range(params.steps):
        rows, swapped, outcomes = order.batch(step)
        batches.append((encode(tokenizer, batch_texts(texts, rows.tolist(), swapped.tolist())),
                        torch.as_tensor(outcomes)))
    encoder.train()
    stamps = []
    for encoded, outcomes in batches:
        hidden = encoder(input_ids=encoded.input_ids, attention_mask=encoded.attention_mask,
                         token_type_ids=encoded.token_type_ids).last_hidden_state
        mask = encoded.attention_mask.unsqueeze(-1).float()
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1)
        loss = F.cross_entropy(pair_logits(head(pooled)), outcomes)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        stamps.append(time.perf_counter())
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def main(steps: int = 30, batch_size: int = 16, max_length: int = 96) -> dict[str, Any]:
    """Measure both on the same pairs and batches; return the figures."""
    params = LoraParams(steps=steps, batch_size=batch_size, max_length=max_length, seed=1,
                        warmup_steps=0)
    table = pairs_table(max(steps * batch_size // 2, 64))
    bare_rate = bare(table, params)
    our_rate = ours(table, params)
    return {"steps": steps, "batch_size": batch_size, "max_length": max_length,
            "threads": torch.get_num_threads(), "ours_steps_per_s": round(our_rate, 3),
            "bare_steps_per_s": round(bare_rate, 3), "ratio": round(our_rate / bare_rate, 3)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=96)
    args = parser.parse_args()
    print(json.dumps(main(args.steps, args.batch_size, args.max_length)))
