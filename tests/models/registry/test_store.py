"""The registry's storage layer on any filesystem: a bucket prefix, file:// URIs, a remote
filesystem with a verified local cache, tamper detection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fti.errors import RegistryError
from fti.models.registry import ModelRegistry, sha256_file
from tests.models.registry.support import MODEL, PASSED, _open, _register, _source


def test_subtree_root_keeps_everything_under_the_bucket_prefix(tmp_path: Path) -> None:
    registry = _open(str(tmp_path), "subtree")
    assert not registry._store.atomic_rename  # the object-store protocol is the one in use
    v = registry.register(MODEL, _source(tmp_path, b"w", "a"), gates=PASSED, device="cpu")
    folder = tmp_path / "bucket" / "prefix" / "registry" / MODEL / "1"
    assert {"model.ubj", "model_card.md", "metadata.json", "_COMPLETE"} <= {
        p.name for p in folder.iterdir()}
    assert registry.root == folder.parent.parent
    assert registry.uri(MODEL, 1) == folder.resolve().as_uri()
    assert registry.artifact_path(MODEL, 1, "model.ubj") == folder / "model.ubj"
    assert registry.get(MODEL, 1) == v and v.device == "cpu"


def test_file_uri_and_path_roots_are_the_same_registry(tmp_path: Path) -> None:
    by_path = ModelRegistry(tmp_path / "reg")
    _register(by_path, tmp_path, 1)
    by_uri = ModelRegistry((tmp_path / "reg").as_uri())
    assert by_uri.version_numbers(MODEL) == [1] and by_uri.get(MODEL, 1) == by_path.get(MODEL, 1)


def test_remote_filesystem_downloads_verified_copies(tmp_path: Path) -> None:
    registry = ModelRegistry("mock:///models", cache_dir=tmp_path / "cache")
    _register(registry, tmp_path, 1)
    assert registry.uri(MODEL, 1) == f"mock://models/{MODEL}/1"
    path = registry.artifact_path(MODEL, 1, "model.ubj")
    assert path.is_relative_to(tmp_path / "cache") and path.read_bytes() == bytes([1]) * 8
    path.write_bytes(b"corrupted cache")  # a bad cached copy is replaced, never returned
    assert registry.read_artifact(MODEL, 1, "model.ubj") == bytes([1]) * 8
    with registry.filesystem.open_output_stream(f"models/{MODEL}/1/model.ubj") as out:
        out.write(b"tampered at the source")
    fresh = ModelRegistry("models", registry.filesystem, cache_dir=tmp_path / "cache2")
    with pytest.raises(RegistryError, match="sha256 mismatch"):
        fresh.artifact_path(MODEL, 1, "model.ubj")
    assert not (tmp_path / "cache2" / MODEL / "1" / "model.ubj").exists()


def test_tamper_detection_through_the_filesystem_layer(tmp_path: Path, kind: str) -> None:
    registry = _open(str(tmp_path), kind)
    v = registry.register(MODEL, _source(tmp_path, b"weights", "a"), gates=PASSED)
    path = registry.artifact_path(MODEL, 1, "model.ubj")
    os.chmod(path, 0o644)
    path.write_bytes(b"evil weights")
    with pytest.raises(RegistryError, match="sha256 mismatch") as err:
        registry.artifact_path(MODEL, 1, "model.ubj")
    assert v.files["model.ubj"] in str(err.value) and sha256_file(path) in str(err.value)
