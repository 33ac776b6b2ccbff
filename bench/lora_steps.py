"""LoRA training speed: our trainer (`fti.models.trainers.lora.train_lora`) against a bare PEFT
loop on the same model, data, batches and optimizer, same run.

The bare loop is what a tutorial writes: build the same LoRA model, AdamW, forward, cross
entropy, backward, step. Steady-state steps/s of each are measured between the first and the
last step (model loading excluded). `ratio` = ours / bare. One JSON line.
Usage: fti bench lora-steps --steps 30 --batch-size 8
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from fti.events import parse_preference
from fti.models.trainers.lora import (
    LoraConfigSpec,
    LoraTrainingParams,
    _BatchOrder,
    _collate,
    base_model_path,
    build_lora_model,
    encode_pairs,
    load_tokenizer,
    train_lora,
)
from fti.synthetic.preferences import PreferenceSpec, generate_preferences


def _pairs(count: int, max_length: int) -> Any:
    rows = []
    for record in generate_preferences(PreferenceSpec(count=count, seed=5)):
        event = parse_preference(record.value)
        rows.append({"prompt": event.prompt, "response_a": event.response_a,
                     "response_b": event.response_b, "label": event.label})
    return encode_pairs(load_tokenizer(base_model_path()), rows, max_length)


def ours(train: Any, steps: int, batch_size: int) -> float:
    """Steady-state steps/s of `train_lora` (no checkpoints, CPU)."""
    stamps: list[float] = []
    params = LoraTrainingParams(max_steps=steps, batch_size=batch_size, seed=1)
    train_lora(base_model_path(), train, LoraConfigSpec(), params,
               on_step=lambda step, loss: stamps.append(time.perf_counter()))
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def bare(train: Any, steps: int, batch_size: int) -> float:
    """Steady-state steps/s of a bare PEFT loop on the same batches."""
    model = build_lora_model(base_model_path(), LoraConfigSpec(), 1, train.pad_token_id)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    order = _BatchOrder(len(train), batch_size, 1)
    model.train()
    stamps = []
    for step in range(steps):
        inputs, labels = _collate(train, order.indices(step), torch.device("cpu"))
        optimizer.zero_grad()
        F.cross_entropy(model(**inputs).logits, labels).backward()
        optimizer.step()
        stamps.append(time.perf_counter())
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def main(steps: int = 30, batch_size: int = 8, max_length: int = 128) -> dict[str, Any]:
    """Measure both on the same encoded pairs; return the figures."""
    train = _pairs(max(steps * batch_size, 64), max_length)
    bare_rate = bare(train, steps, batch_size)
    our_rate = ours(train, steps, batch_size)
    return {"steps": steps, "batch_size": batch_size, "max_length": max_length,
            "threads": torch.get_num_threads(), "ours_steps_per_s": round(our_rate, 3),
            "bare_steps_per_s": round(bare_rate, 3), "ratio": round(our_rate / bare_rate, 3)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    print(json.dumps(main(args.steps, args.batch_size, args.max_length)))
