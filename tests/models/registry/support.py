"""Helpers of the registry tests: sources to register, a registry on a local path or on a
simulated bucket prefix, and registering numbered versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyarrow import fs as pafs

from fti.models.registry import ModelRegistry

MODEL = "fraud-xgb"
PASSED = {"passed": True, "reasons": []}
FAILED = {"passed": False, "reasons": ["roc_auc 0.61 < min 0.75"]}
KINDS = ["local", "subtree"]


def _source(tmp_path: Path, content: bytes, name: str) -> Path:
    source = tmp_path / "sources" / name
    source.mkdir(parents=True)
    (source / "model.ubj").write_bytes(content)
    (source / "model_card.md").write_text(f"# card {name}\n")
    return source


def _open(root: str, kind: str) -> ModelRegistry:
    """A registry on a local path, or on a SubTreeFileSystem simulating a bucket prefix."""
    if kind == "local":
        return ModelRegistry(Path(root) / "registry")
    bucket = Path(root) / "bucket"
    bucket.mkdir(exist_ok=True)
    return ModelRegistry(
        "prefix/registry", filesystem=pafs.SubTreeFileSystem(str(bucket), pafs.LocalFileSystem())
    )


def _register(registry: ModelRegistry, tmp_path: Path, n: int, **fields: Any) -> int:
    fields = {"gates": PASSED, "metrics": {"roc_auc": 0.9 + n / 100}} | fields
    return registry.register(MODEL, _source(tmp_path, bytes([n]) * 8, f"s{n}"), **fields).version
