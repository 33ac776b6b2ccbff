"""A deterministic, resumable PyTorch MLP trainer for binary, multiclass and regression tasks.

Features are standardized with the train split's mean and std. The loss is per task: binary
BCE-with-logits weighted by negatives/positives of the train split; multiclass cross-entropy
over one logit per class (``inputs.classes`` order); regression the mean squared error of the
target standardized with the train split's mean and std (recorded in ``mlp.json``, so
predictions come back in the target's unit). The optimizer is AdamW, and training stops early
when the validation loss has not improved for ``patience`` epochs; the weights of the best
epoch are kept.

Runs are reproducible: python, numpy and torch are seeded, torch runs with deterministic
algorithms, and each epoch re-seeds the shuffle and dropout from ``(seed, epoch)``. So a run
resumed from the checkpoint written after every epoch (``workdir/checkpoints``) ends with the
same weights, bit for bit, as one that was never interrupted (same device and thread count).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fti.errors import ConfigError
from fti.features.dataset_records import Split
from fti.models.devices import describe_device, torch_device
from fti.models.errors import TrainerError
from fti.models.trainers.base import (
    SIGNATURE_FILE,
    EpochCallback,
    FitResult,
    ModelInputs,
    artifact_dir,
    write_signature,
)
from fti.models.trainers.checkpoints import (
    latest_checkpoint,
    optimizer_groups,
    optimizer_tensors,
    restore_optimizer,
    save_checkpoint,
)
from fti.models.trainers.mlp_model import (
    CONFIG_FILE,
    MODEL_FILE,
    LoadedMLP,
    Standardizer,
    TargetScale,
    build_network,
    load_mlp,
    pos_weight,
    save_mlp,
)

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
#: Tasks the MLP fits.
TASKS: tuple[str, ...] = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class MLPParams:
    """Hyperparameters of the MLP, stored under these names in registry metadata.

    >>> MLPParams(hidden_sizes=[16]).hidden_sizes
    (16,)
    """

    hidden_sizes: tuple[int, ...] = (64, 32)
    dropout: float = 0.1
    epochs: int = 40
    batch_size: int = 128
    lr: float = 1e-2
    weight_decay: float = 1e-4
    patience: int = 8
    seed: int = 42
    #: Intra-op CPU threads while fitting: a small MLP runs fastest on one (no thread barriers),
    #: and a fixed count keeps CPU float reductions identical from machine to machine.
    cpu_threads: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))
        counts = (self.epochs, self.batch_size, self.patience, self.cpu_threads)
        checks = {
            "hidden_sizes must be non-empty and > 0": bool(self.hidden_sizes)
            and min(self.hidden_sizes) > 0,
            "dropout must be in [0, 1)": 0 <= self.dropout < 1,
            "epochs, batch_size, patience and cpu_threads must be >= 1": min(counts) >= 1,
            "lr must be > 0 and weight_decay >= 0": self.lr > 0 and self.weight_decay >= 0,
        }
        failed = [rule for rule, ok in checks.items() if not ok]
        if failed:
            raise ConfigError(f"MLP hyperparameters {asdict(self)}: {'; '.join(failed)}")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready hyperparameters (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class _Data:
    """The split as standardized tensors on the CPU, with what the loss needs."""

    inputs: ModelInputs
    standardizer: Standardizer
    train: TensorDataset
    val_x: torch.Tensor
    val_y: torch.Tensor
    pos_weight: float
    target_scale: TargetScale
    fingerprint: str

    @property
    def n_outputs(self) -> int:
        """One logit per class (multiclass), else one output."""
        return len(self.inputs.classes or ()) if self.inputs.task == "multiclass" else 1


def _targets(table: pa.Table, inputs: ModelInputs, scale: TargetScale) -> np.ndarray:
    """What the loss compares with: 0/1 floats, class indices, or standardized values."""
    y = inputs.target(table)
    if inputs.task == "multiclass":
        return inputs.class_index(y)
    if inputs.task == "regression":
        return scale.transform(y)
    return y.astype(np.float32)


def _prepare(split: Split, params: MLPParams, inputs: ModelInputs) -> _Data:
    if split.validation.num_rows == 0:
        raise TrainerError("the validation split is empty; early stopping needs validation rows")
    X = inputs.matrix(split.train)
    scale = TargetScale()
    if inputs.task == "regression":
        scale = TargetScale.fit(inputs.target(split.train))
    y = _targets(split.train, inputs, scale)
    standardizer = Standardizer.fit(X)
    val_x = standardizer.transform(inputs.matrix(split.validation))
    val_y = _targets(split.validation, inputs, scale)
    train_x = standardizer.transform(X)
    identity = params.as_dict() | {"inputs": inputs.to_dict()}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode())
    for array in (train_x, y, val_x, val_y):
        digest.update(np.ascontiguousarray(array).tobytes())
    return _Data(
        inputs=inputs,
        standardizer=standardizer,
        train=TensorDataset(torch.from_numpy(train_x), torch.from_numpy(y)),
        val_x=torch.from_numpy(val_x),
        val_y=torch.from_numpy(val_y),
        pos_weight=pos_weight(y) if inputs.task == "binary" else 1.0,
        target_scale=scale,
        fingerprint=digest.hexdigest(),
    )


def _loss(data: _Data, device: torch.device) -> nn.Module:
    """The task's training loss on ``device``."""
    if data.inputs.task == "multiclass":
        return nn.CrossEntropyLoss()
    if data.inputs.task == "regression":
        return nn.MSELoss()
    weight = torch.tensor([data.pos_weight], dtype=torch.float32, device=device)
    return nn.BCEWithLogitsLoss(pos_weight=weight)


@contextmanager
def deterministic_torch(device: str, cpu_threads: int = 1) -> Iterator[None]:
    """Run the body with torch's deterministic algorithms on and ``cpu_threads`` intra-op
    threads; restore the previous settings after.

    >>> with deterministic_torch("cpu"):
    ...     torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    (True, 1)
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(cpu_threads)
    if device == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        torch.backends.cudnn.benchmark = benchmark
        torch.set_num_threads(threads)


def seed_everything(seed: int, device: str = "cpu") -> None:
    """Seed python's, numpy's and torch's generators (and the XLA one on TPUs)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if device == "xla":
        import torch_xla.core.xla_model as xm  # optional; present on TPU hosts only

        xm.set_rng_state(seed)


def _seed_worker(worker_id: int) -> None:
    """DataLoader workers (none by default) seed numpy and python from torch's worker seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _epoch_seed(seed: int, epoch: int) -> int:
    # Derived per epoch, so a resumed run needs no RNG state to shuffle and drop out identically.
    return (seed * 1_000_003 + epoch) % 2**63


@dataclass
class _State:
    """Progress of a run; saved as JSON with every checkpoint."""

    epoch: int = 0
    best_epoch: int = 0
    best_val_loss: float = float("inf")
    bad_epochs: int = 0
    history: dict[str, list[float]] = field(
        default_factory=lambda: {"train_loss": [], "val_loss": []}
    )


class _Run:
    """One fit: network, optimizer and loss on a device, advanced one epoch at a time."""

    def __init__(self, params: MLPParams, data: _Data, device: str) -> None:
        self.params, self.data, self.device = params, data, device
        self.dev = torch_device(device)
        self.bf16 = describe_device(device)["precision"] == "bf16"
        seed_everything(params.seed, device)
        n_inputs = data.train.tensors[0].shape[1]
        self.net = build_network(
            n_inputs, params.hidden_sizes, params.dropout, data.n_outputs
        ).to(self.dev)
        self.optimizer = torch.optim.AdamW(
            self.net.parameters(), lr=params.lr, weight_decay=params.weight_decay
        )
        self.loss = _loss(data, self.dev)
        self.generator = torch.Generator()
        self.loader = DataLoader(
            data.train,
            batch_size=params.batch_size,
            shuffle=True,
            generator=self.generator,
            num_workers=0,
            worker_init_fn=_seed_worker,
        )
        self.state = _State()
        self.best = self._weights()

    def _weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self.net(x)
        # Multiclass keeps one logit per class; the other tasks have a single output.
        return (out if self.data.inputs.task == "multiclass" else out.squeeze(1)).float()

    def finished(self) -> bool:
        """True when all epochs ran or the validation loss stopped improving."""
        s = self.state
        return s.epoch >= self.params.epochs or s.bad_epochs >= self.params.patience

    def train_epoch(self) -> float:
        """One pass over the shuffled train split; the mean train loss."""
        seed = _epoch_seed(self.params.seed, self.state.epoch + 1)
        self.generator.manual_seed(seed)
        seed_everything(seed, self.device)
        self.net.train()
        total, rows = 0.0, 0
        for x, y in self.loader:
            x, y = x.to(self.dev), y.to(self.dev)
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(self._logits(x), y)
            loss.backward()
            self.optimizer.step()
            _mark_step(self.device)
            total += float(loss.item()) * len(y)
            rows += len(y)
        return total / rows

    def validate(self) -> float:
        """The loss on the whole validation split."""
        self.net.eval()
        with torch.no_grad():
            x, y = self.data.val_x.to(self.dev), self.data.val_y.to(self.dev)
            return float(self.loss(self._logits(x), y).item())

    def end_epoch(self, train_loss: float, val_loss: float) -> None:
        """Record an epoch's losses and keep its weights if validation improved."""
        s = self.state
        s.epoch += 1
        s.history["train_loss"].append(train_loss)
        s.history["val_loss"].append(val_loss)
        if val_loss < s.best_val_loss:
            s.best_epoch, s.best_val_loss, s.bad_epochs = s.epoch, val_loss, 0
            self.best = self._weights()
        else:
            s.bad_epochs += 1

    def checkpoint(self, directory: Path) -> None:
        """Save everything needed to continue after this epoch."""
        tensors = {f"model.{k}": v for k, v in self.net.state_dict().items()}
        tensors |= {f"best.{k}": v for k, v in self.best.items()}
        tensors |= optimizer_tensors(self.optimizer)
        state = asdict(self.state) | {
            "fingerprint": self.data.fingerprint,
            "optimizer_groups": optimizer_groups(self.optimizer),
        }
        save_checkpoint(directory, self.state.epoch, tensors, state)

    def resume(self, directory: Path) -> int | None:
        """Continue from the newest checkpoint of this same run; the epoch resumed from."""
        found = latest_checkpoint(directory)
        if found is None:
            return None
        epoch, tensors, state = found
        if state.pop("fingerprint") != self.data.fingerprint:
            logger.warning(
                "checkpoints in %s belong to other data or parameters; removed", directory
            )
            shutil.rmtree(directory)
            return None
        restore_optimizer(self.optimizer, tensors, state.pop("optimizer_groups"))
        self.net.load_state_dict(_prefixed(tensors, "model."))
        self.best = {k: v.to(self.dev) for k, v in _prefixed(tensors, "best.").items()}
        self.state = _State(**state)
        return epoch

    def final_network(self) -> nn.Module:
        """The network with the weights of its best epoch."""
        self.net.load_state_dict(self.best)
        return self.net


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _mark_step(device: str) -> None:
    if device == "xla":
        import torch_xla.core.xla_model as xm  # optional; present on TPU hosts only

        xm.mark_step()  # run the step's lazily traced graph on the TPU


class MLPTrainer:
    """Trains, saves and loads an MLP of any task in `TASKS`; hyperparameters as in `MLPParams`.

    >>> MLPTrainer(epochs=3).params.epochs
    3
    """

    kind = "mlp"
    tasks: tuple[str, ...] = TASKS
    artifact_files: tuple[str, ...] = (MODEL_FILE, CONFIG_FILE, SIGNATURE_FILE)

    def __init__(self, **hyperparameters: Any) -> None:
        self.params = MLPParams(**hyperparameters)

    def fit(
        self, split: Split, inputs: ModelInputs, device: str, workdir: Path,
        progress: EpochCallback | None = None,
    ) -> FitResult:
        """Train (resuming from ``workdir/checkpoints`` if a checkpoint is there) and save
        ``model.safetensors``, ``mlp.json`` and ``signature.json``."""
        if inputs.task not in TASKS:
            raise TrainerError(f"the MLP trainer fits {', '.join(TASKS)} models, "
                               f"not {inputs.task!r}")
        data = _prepare(split, self.params, inputs.with_classes(split))
        checkpoints = Path(workdir) / CHECKPOINT_DIR
        with deterministic_torch(device, self.params.cpu_threads):
            run = _Run(self.params, data, device)
            resumed = run.resume(checkpoints)
            if resumed is not None:
                logger.info(
                    "resumed %s training from epoch %d in %s", self.kind, resumed, checkpoints
                )
            while not run.finished():
                losses = {"train_loss": run.train_epoch(), "val_loss": run.validate()}
                run.end_epoch(**losses)
                run.checkpoint(checkpoints)
                if progress is not None:
                    progress(run.state.epoch, losses)
            network = run.final_network()
        files = save_mlp(Path(workdir), network, data.standardizer, self._config(run),
                         data.inputs)
        signature = write_signature(Path(workdir), self, data.inputs, files)
        return FitResult([*files, str(signature)], run.state.history, self._params(run, resumed))

    def _config(self, run: _Run) -> dict[str, Any]:
        scale = run.data.target_scale
        return {
            "hidden_sizes": list(self.params.hidden_sizes),
            "dropout": self.params.dropout,
            "best_epoch": run.state.best_epoch,
            "n_outputs": run.data.n_outputs,
            "label": run.data.inputs.label,
            "target_mean": scale.mean,
            "target_std": scale.std,
        }

    def _params(self, run: _Run, resumed: int | None) -> dict[str, Any]:
        s = run.state
        inputs = run.data.inputs
        return self.params.as_dict() | {
            "device": run.device,
            "task": inputs.task,
            "feature_columns": list(inputs.features),
            "classes": None if inputs.classes is None else list(inputs.classes),
            "pos_weight": run.data.pos_weight if inputs.task == "binary" else None,
            "epochs_run": s.epoch,
            "best_epoch": s.best_epoch,
            "best_val_loss": s.best_val_loss,
            "early_stopped": s.bad_epochs >= self.params.patience,
            "resumed_from_epoch": resumed,
            "train_rows": len(run.data.train),
        }

    def predict(self, source: Path | Sequence[str | Path], X: np.ndarray) -> np.ndarray:
        """Load the MLP in ``source`` (directory or its files) and score ``X``."""
        return self.load(artifact_dir(source)).predict(X)

    def load(self, path_dir: Path) -> LoadedMLP:
        """Load ``model.safetensors`` + ``mlp.json`` (+ ``signature.json``) from ``path_dir``
        (safetensors only, never pickle)."""
        return load_mlp(path_dir)
