"""The LoRA training loop, and the checkpoints an interrupted run resumes from.

Training is a plain loop: AdamW, cosine schedule with warmup, gradient accumulation, bf16
autocast on cuda/xla (fp32 on cpu). With a work directory the run checkpoints every N steps
(adapter as safetensors, optimizer/scheduler/RNG state through ``torch.save``, progress as
JSON) and resumes from the newest checkpoint to the same weights; state is read back with
``torch.load(weights_only=True)``, never pickle.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from peft import PeftModel, set_peft_model_state_dict
from safetensors.torch import load_file
from tqdm import tqdm
from transformers import get_cosine_schedule_with_warmup as cosine_with_warmup

from fti.errors import FtiError
from fti.models.trainers.lora.config import (
    ADAPTER_WEIGHTS,
    LoraConfigSpec,
    LoraTrainingParams,
    StepHook,
)
from fti.models.trainers.lora.data import EncodedPairs, _BatchOrder, _collate
from fti.models.trainers.lora.model import (
    _mixed_precision,
    _sync,
    _torch_device,
    build_lora_model,
    weights_sha256,
)

logger = logging.getLogger(__name__)

_STATE_FILE = "training_state.pt"
_RUN_FILE = "trainer_state.json"
_CHECKPOINT = "checkpoint-"


@dataclass
class TrainedLora:
    """A trained adapter model and how the run went (``losses`` covers resumed steps too)."""

    model: PeftModel
    losses: list[float]
    steps: int
    resumed_from: int
    seconds: float  # wall time of the steps this process ran

    @property
    def steps_per_second(self) -> float:
        """Optimizer steps per second in this process."""
        ran = self.steps - self.resumed_from
        return ran / self.seconds if self.seconds > 0 else 0.0


def run_fingerprint(
    lora: LoraConfigSpec, params: LoraTrainingParams, base_sha256: str, data: EncodedPairs,
    device: str,
) -> str:
    """Identity of a training run: a checkpoint resumes only a run with the same fingerprint."""
    identity = [lora.model_dump(), params.result_fields(), base_sha256, data.sha256(), device]
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def train_lora(
    base_path: Path | str,
    train: EncodedPairs,
    lora: LoraConfigSpec,
    params: LoraTrainingParams,
    device: str = "cpu",
    workdir: Path | None = None,
    on_step: StepHook | None = None,
    progress: bool = False,
    base_sha256: str | None = None,
) -> TrainedLora:
    """Train LoRA adapters and the head on ``train``; with ``workdir``, checkpoint every
    ``params.checkpoint_every`` steps and at the end, and resume from the newest checkpoint.
    ``on_step(step, loss)`` runs after each optimizer step."""
    if len(train) == 0:
        raise FtiError("cannot train on zero rows")
    base_dtype = torch.bfloat16 if device.split(":")[0] in ("cuda", "xla") else torch.float32
    model = build_lora_model(base_path, lora, params.seed, train.pad_token_id, base_dtype)
    model.to(_torch_device(device))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([
        {"params": [p for p in trainable if p.ndim >= 2], "weight_decay": params.weight_decay},
        {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0},
    ], lr=params.lr)  # fmt: skip
    total = params.total_steps(len(train))
    scheduler = cosine_with_warmup(optimizer, round(total * params.warmup_ratio), total)
    base_sha256 = base_sha256 or weights_sha256(Path(base_path))
    fingerprint = run_fingerprint(lora, params, base_sha256, train, device)
    first, losses = 0, []
    if workdir is not None:
        first, losses = resume(Path(workdir), model, optimizer, scheduler, fingerprint)
    order = _BatchOrder(len(train), params.batch_size, params.seed)
    bar = tqdm(total=total, initial=first, desc="lora", unit="step", disable=not progress)
    began = time.perf_counter()
    for step in range(first, total):
        losses.append(_train_step(model, optimizer, train, order, step, params, device))
        scheduler.step()
        if workdir is not None and ((step + 1) % params.checkpoint_every == 0 or step + 1 == total):
            save_checkpoint(Path(workdir), step + 1, model, optimizer, scheduler, losses,
                            fingerprint, params.keep_checkpoints)
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        if on_step is not None:
            on_step(step + 1, losses[-1])
    bar.close()
    return TrainedLora(model, losses, total, first, time.perf_counter() - began)


def _train_step(
    model: PeftModel, optimizer: torch.optim.Optimizer, train: EncodedPairs, order: _BatchOrder,
    step: int, params: LoraTrainingParams, device: str,
) -> float:
    """One optimizer step over ``grad_accum`` micro-batches; returns the step's mean loss."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    trainable = [p for group in optimizer.param_groups for p in group["params"]]
    loss = 0.0
    for micro in range(params.grad_accum):
        indices = order.indices(step * params.grad_accum + micro)
        inputs, labels = _collate(train, indices, trainable[0].device)
        with _mixed_precision(device):
            logits = model(**inputs).logits
        micro_loss = F.cross_entropy(logits.float(), labels) / params.grad_accum
        micro_loss.backward()
        loss += float(micro_loss.detach())
    torch.nn.utils.clip_grad_norm_(trainable, params.max_grad_norm)
    optimizer.step()
    _sync(device)
    return loss


# --- checkpoints -------------------------------------------------------------------------


def checkpoints(workdir: Path) -> list[Path]:
    """Complete checkpoint directories in ``workdir``, oldest first."""
    if not Path(workdir).is_dir():
        return []
    return sorted(p for p in Path(workdir).iterdir() if p.name.startswith(_CHECKPOINT))


def save_checkpoint(
    workdir: Path, step: int, model: PeftModel, optimizer: torch.optim.Optimizer,
    scheduler: Any, losses: list[float], fingerprint: str, keep: int = 2,
) -> Path:
    """Write adapter (safetensors), optimizer/scheduler/RNG state and progress atomically."""
    workdir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=workdir))
    model.save_pretrained(staging, safe_serialization=True)
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "rng_cpu": torch.get_rng_state()}  # fmt: skip
    if torch.cuda.is_available():
        state["rng_cuda"] = torch.cuda.get_rng_state_all()
    torch.save(state, staging / _STATE_FILE)
    run = {"step": step, "losses": losses, "fingerprint": fingerprint}
    (staging / _RUN_FILE).write_text(json.dumps(run))
    target = workdir / f"{_CHECKPOINT}{step:08d}"
    shutil.rmtree(target, ignore_errors=True)
    os.rename(staging, target)  # a checkpoint is complete or absent
    for old in checkpoints(workdir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def resume(
    workdir: Path, model: PeftModel, optimizer: torch.optim.Optimizer, scheduler: Any,
    fingerprint: str,
) -> tuple[int, list[float]]:
    """Load the newest checkpoint into the run; return (steps done, losses so far)."""
    found = checkpoints(workdir)
    if not found:
        return 0, []
    newest = found[-1]
    run = json.loads((newest / _RUN_FILE).read_text())
    if run["fingerprint"] != fingerprint:
        raise FtiError(
            f"checkpoint {newest} belongs to a run with other data, parameters or base model; "
            f"delete {workdir} to start over"
        )
    device = next(p for p in model.parameters() if p.requires_grad).device
    weights = load_file(newest / ADAPTER_WEIGHTS, device=str(device))
    outcome = set_peft_model_state_dict(model, weights)
    if outcome.unexpected_keys:
        raise FtiError(f"checkpoint {newest} holds unknown weights {outcome.unexpected_keys[:3]}")
    state = torch.load(newest / _STATE_FILE, map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng_cpu"])
    if "rng_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    logger.info("resumed from %s (step %d)", newest, run["step"])
    return int(run["step"]), list(run["losses"])
