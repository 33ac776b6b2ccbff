"""Immutable version folders: invisible until complete, failed writes leave nothing,
metadata.json never changes, older registries still read, the code version recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fti.errors import RegistryError
from fti.models.registry import ModelRegistry, sha256_file
from fti.models.registry.store import RegistryStore
from tests.models.registry.support import MODEL, PASSED, _open, _register


def test_a_version_is_invisible_until_complete(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = _open(str(tmp_path), kind)
    reader = _open(str(tmp_path), kind)
    seen: list[list[int]] = []
    write = RegistryStore.write_bytes

    def watching(self: RegistryStore, path: str, data: bytes) -> None:
        if path.endswith("_COMPLETE"):  # everything else of the version is written by now
            seen.append(reader.version_numbers(MODEL))
            with pytest.raises(RegistryError, match="not found"):
                reader.get(MODEL, 1)
        write(self, path, data)

    monkeypatch.setattr(RegistryStore, "write_bytes", watching)
    _register(registry, tmp_path, 1)
    assert seen == [[]] and reader.version_numbers(MODEL) == [1]


def test_an_unfinished_version_stays_invisible_and_its_number_is_skipped(tmp_path: Path) -> None:
    registry = _open(str(tmp_path), "subtree")
    _register(registry, tmp_path, 1)
    crashed = tmp_path / "bucket" / "prefix" / "registry" / MODEL / "2"
    crashed.mkdir()
    (crashed / "metadata.json").write_text("{}")  # a writer died before _COMPLETE
    assert registry.version_numbers(MODEL) == [1]
    with pytest.raises(RegistryError, match="version 2 not found"):
        registry.get(MODEL, 2)
    assert _register(registry, tmp_path, 3) == 3


def test_a_failed_write_leaves_nothing_visible(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = _open(str(tmp_path), kind)
    write = RegistryStore.write_bytes

    def broken(self: RegistryStore, path: str, data: bytes) -> None:
        if path.endswith("_COMPLETE"):  # artifacts and metadata.json are already written
            raise OSError("disk full")
        write(self, path, data)

    monkeypatch.setattr(RegistryStore, "write_bytes", broken)
    with pytest.raises(OSError, match="disk full"):
        _register(registry, tmp_path, 1)
    monkeypatch.setattr(RegistryStore, "write_bytes", write)
    assert registry.version_numbers(MODEL) == []
    model_dir = Path(registry.root) / MODEL
    assert [p.name for p in model_dir.iterdir() if not p.name.startswith(".")] == []
    assert _register(registry, tmp_path, 2) == 1


def test_metadata_json_never_changes(tmp_path: Path, registry: ModelRegistry) -> None:
    _register(registry, tmp_path, 1)
    metadata = Path(registry.root) / MODEL / "1" / "metadata.json"
    before = metadata.read_bytes()
    registry.approve(MODEL, 1, "ok")
    registry.promote(MODEL, 1)
    registry.promote(MODEL, 1, alias="challenger")
    assert metadata.read_bytes() == before
    assert registry.get(MODEL, 1).approval.status == "approved"


def test_older_registries_without_markers_or_history_still_work(tmp_path: Path) -> None:
    folder = tmp_path / "reg" / MODEL
    for n in (1, 2, 3):
        (folder / str(n)).mkdir(parents=True)
        (folder / str(n) / "model.ubj").write_bytes(b"x")
        (folder / str(n) / "metadata.json").write_text(json.dumps({
            "model": MODEL, "version": n, "created_at": "2026-01-01T00:00:00Z",
            "files": {"model.ubj": sha256_file(folder / str(n) / "model.ubj")},
            "gates": PASSED, "promoted": n != 2}))
    (folder / "aliases.json").write_text('{"champion": 3}')
    registry = ModelRegistry(tmp_path / "reg")
    assert registry.version_numbers(MODEL) == [1, 2, 3]
    assert registry.get(MODEL, 3).approval.status == "pending"
    assert registry.rollback(MODEL, "no history: newest promoted before 3") == 1


def test_code_version_defaults_to_this_checkout(tmp_path: Path, registry: ModelRegistry) -> None:
    _register(registry, tmp_path, 1)
    _register(registry, tmp_path, 2, code_version="abc123",
              signature={"inputs": [{"name": "amount", "dtype": "float32"}]},
              lineage={"feature_view": "fraud", "dataset_version": 4,
                       "table_versions": {"transactions": 7}})
    first, second = registry.get(MODEL, 1), registry.get(MODEL, 2)
    assert first.code_version and (len(first.code_version) == 40
                                   or first.code_version.startswith("fti=="))
    assert second.code_version == "abc123" and second.lineage.table_versions == {
        "transactions": 7}
    assert second.signature.inputs[0].name == "amount"
