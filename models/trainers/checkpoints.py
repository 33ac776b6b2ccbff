"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint of epoch N is ``epoch-N.safetensors`` (tensors: model, best weights, optimizer
moments) plus ``epoch-N.json`` (scalars, history, optimizer hyperparameters, and the sha256 of
the tensor file). The JSON file is written last, atomically, so it marks a complete checkpoint:
a process killed mid-write leaves at most an orphan tensor file that is never read.

>>> import tempfile, torch
>>> d = Path(tempfile.mkdtemp())
>>> _ = save_checkpoint(d, 1, {"w": torch.ones(2)}, {"loss": 0.5})
>>> epoch, tensors, state = latest_checkpoint(d)
>>> epoch, tensors["w"].tolist(), state["loss"]
(1, [1.0, 1.0], 0.5)
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from fti.models.registry import sha256_file

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^epoch-(\d+)\.json$")
_OPTIM = "optim."


def save_checkpoint(
    directory: Path, epoch: int, tensors: dict[str, torch.Tensor], state: dict[str, Any]
) -> Path:
    """Write the checkpoint of ``epoch`` into ``directory``; return the path of its JSON file."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / f"epoch-{epoch}.safetensors"
    cpu = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
    _atomic(weights, lambda path: save_file(cpu, str(path)))
    sidecar = {"epoch": epoch, "tensors_sha256": sha256_file(weights), "state": state}
    target = directory / f"epoch-{epoch}.json"
    _atomic(target, lambda path: path.write_text(json.dumps(sidecar, indent=1)))
    return target


def _atomic(target: Path, write: Any) -> None:
    fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
    os.close(fd)
    try:
        write(Path(temp))
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def checkpoint_epochs(directory: Path) -> list[int]:
    """Epochs with a complete checkpoint in ``directory``, ascending."""
    if not Path(directory).is_dir():
        return []
    found = (_NAME.match(p.name) for p in Path(directory).iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def latest_checkpoint(
    directory: Path,
) -> tuple[int, dict[str, torch.Tensor], dict[str, Any]] | None:
    """The newest intact checkpoint as (epoch, tensors on cpu, state), or None if there is none.

    A checkpoint whose tensor file does not match the sha256 in its JSON is skipped (logged).
    """
    for epoch in reversed(checkpoint_epochs(directory)):
        sidecar = json.loads((Path(directory) / f"epoch-{epoch}.json").read_text())
        weights = Path(directory) / f"epoch-{epoch}.safetensors"
        if not weights.is_file() or sha256_file(weights) != sidecar["tensors_sha256"]:
            logger.warning("checkpoint %s is incomplete or corrupt; trying an older one", weights)
            continue
        return epoch, load_file(str(weights), device="cpu"), sidecar["state"]
    return None


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The optimizer's per-parameter state as flat ``optim.<param>.<key>`` tensors."""
    tensors: dict[str, torch.Tensor] = {}
    for index, values in optimizer.state_dict()["state"].items():
        for key, value in values.items():
            tensors[f"{_OPTIM}{index}.{key}"] = torch.as_tensor(value)
    return tensors


def optimizer_groups(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """The optimizer's hyperparameter groups as JSON-ready dicts (tuples become lists)."""
    return [
        {k: list(v) if isinstance(v, tuple) else v for k, v in group.items()}
        for group in optimizer.state_dict()["param_groups"]
    ]


def restore_optimizer(
    optimizer: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    groups: list[dict[str, Any]],
) -> None:
    """Load state saved by `optimizer_tensors` and `optimizer_groups` back into ``optimizer``."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        if name.startswith(_OPTIM):
            index, key = name[len(_OPTIM) :].split(".", 1)
            state.setdefault(int(index), {})[key] = tensor
    restored = [{k: tuple(v) if k == "betas" else v for k, v in group.items()} for group in groups]
    optimizer.load_state_dict({"state": state, "param_groups": restored})
