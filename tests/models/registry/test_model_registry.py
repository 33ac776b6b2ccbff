"""The model registry: immutable versions, aliases, sha256 checks and rollback."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from fti.errors import RegistryError
from fti.models.registry import ModelRegistry, sha256_file

MODEL = "fraud-xgb"
PASSED = {"passed": True, "reasons": []}


def _source(tmp_path: Path, content: bytes, name: str = "src") -> Path:
    source = tmp_path / name
    source.mkdir()
    (source / "model.ubj").write_bytes(content)
    (source / "model_card.md").write_text("# card\n")
    return source


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry")


def test_register_numbers_versions_and_records_hashes(
    tmp_path: Path, registry: ModelRegistry
) -> None:
    v1 = registry.register(
        MODEL, _source(tmp_path, b"one", "a"), gates=PASSED, promoted=True, metrics={"roc_auc": 0.9}
    )
    v2 = registry.register(
        MODEL,
        _source(tmp_path, b"two", "b"),
        gates={"passed": False, "reasons": ["roc_auc 0.5 < min 0.75"]},
    )
    assert (v1.version, v2.version) == (1, 2)
    assert [v.version for v in registry.versions(MODEL)] == [1, 2]
    assert registry.get(MODEL, 1) == v1
    assert registry.get(MODEL, 2).gates.reasons == ["roc_auc 0.5 < min 0.75"]
    for name, digest in v1.files.items():
        assert sha256_file(registry.root / MODEL / "1" / name) == digest
    assert sorted(p.name for p in (registry.root / MODEL).iterdir()) == ["1", "2"]


def test_version_dirs_are_immutable(tmp_path: Path, registry: ModelRegistry) -> None:
    registry.register(MODEL, _source(tmp_path, b"one"), gates=PASSED)
    with pytest.raises(RegistryError, match="version 1 already exists"):
        registry.register(MODEL, _source(tmp_path, b"other", "b"), gates=PASSED, version=1)
    assert (registry.root / MODEL / "1" / "model.ubj").read_bytes() == b"one"
    mode = (registry.root / MODEL / "1" / "model.ubj").stat().st_mode
    assert stat.S_IMODE(mode) & 0o222 == 0  # artifacts are stored read-only


def test_aliases(tmp_path: Path, registry: ModelRegistry) -> None:
    registry.register(MODEL, _source(tmp_path, b"one"), gates=PASSED)
    assert registry.alias(MODEL) is None
    registry.set_alias(MODEL, "champion", 1)
    assert registry.alias(MODEL, "champion") == 1
    with pytest.raises(RegistryError, match="version 7 not found"):
        registry.set_alias(MODEL, "champion", 7)
    assert registry.alias(MODEL) == 1


def test_tampered_artifact_is_refused(tmp_path: Path, registry: ModelRegistry) -> None:
    v1 = registry.register(MODEL, _source(tmp_path, b"weights"), gates=PASSED)
    path = registry.artifact_path(MODEL, 1, "model.ubj")
    assert path.read_bytes() == b"weights"
    os.chmod(path, 0o644)
    path.write_bytes(b"evil weights")
    with pytest.raises(RegistryError) as err:
        registry.artifact_path(MODEL, 1, "model.ubj")
    message = str(err.value)
    assert "model.ubj" in message and v1.files["model.ubj"] in message
    assert sha256_file(path) in message
    with pytest.raises(RegistryError, match="no file 'weights.bin'"):
        registry.artifact_path(MODEL, 1, "weights.bin")


def test_rollback_goes_to_previous_promoted_version(
    tmp_path: Path, registry: ModelRegistry
) -> None:
    for i, promoted in enumerate([True, False, True], start=1):
        registry.register(
            MODEL, _source(tmp_path, bytes([i]), f"s{i}"), gates=PASSED, promoted=promoted
        )
        if promoted:
            registry.set_alias(MODEL, "champion", i)
    assert registry.alias(MODEL) == 3
    assert registry.rollback(MODEL) == 1
    assert registry.alias(MODEL) == 1
    with pytest.raises(RegistryError, match="no promoted version before champion 1"):
        registry.rollback(MODEL)


def test_rollback_without_champion(registry: ModelRegistry) -> None:
    with pytest.raises(RegistryError, match="no champion"):
        registry.rollback(MODEL)


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".hidden", "x" * 200, "a\\b", "/abs"])
def test_bad_model_names_are_refused(tmp_path: Path, registry: ModelRegistry, bad: str) -> None:
    with pytest.raises(RegistryError, match="model name must match"):
        registry.register(bad, _source(tmp_path, b"one"), gates=PASSED)
    with pytest.raises(RegistryError, match="model name must match"):
        registry.get(bad, 1)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("bad", [0, -1, True, "1"])
def test_bad_versions_are_refused(registry: ModelRegistry, bad: object) -> None:
    with pytest.raises(RegistryError, match="version must be an integer"):
        registry.get(MODEL, bad)  # type: ignore[arg-type]


def test_uri_sha256_and_event(tmp_path: Path, registry: ModelRegistry) -> None:
    registry.register(MODEL, _source(tmp_path, b"one"), gates=PASSED)
    uri = registry.uri(MODEL, 1)
    assert uri.startswith("file://") and uri.endswith(f"/{MODEL}/1")
    digest = registry.version_sha256(MODEL, 1)
    assert len(digest) == 64 and digest == registry.version_sha256(MODEL, 1)
    event = registry.event(MODEL, 1, "promoted", "champion")
    assert (event.version, event.event, event.alias, event.uri, event.sha256) == (
        1,
        "promoted",
        "champion",
        uri,
        digest,
    )


def test_missing_card_is_refused(tmp_path: Path, registry: ModelRegistry) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "model.ubj").write_bytes(b"x")
    with pytest.raises(RegistryError, match="model card 'model_card.md'"):
        registry.register(MODEL, source, gates=PASSED)
    assert registry.version_numbers(MODEL) == []
    assert list((registry.root / MODEL).iterdir()) == []


def test_a_report_is_attached_after_registration_without_changing_the_version(
        tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    source = tmp_path / "model"
    source.mkdir()
    (source / "model.bin").write_bytes(b"weights")
    version = registry.register("m", source, gates={"passed": True, "reasons": []}, card=None)
    before = registry.version_sha256("m", version.version)
    assert registry.report_files("m", version.version) == {}
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "roc.png").write_bytes(b"\x89PNG roc")

    attached = registry.attach_report("m", version.version, plots)

    assert attached == registry.report_files("m", version.version) == {
        "roc.png": hashlib.sha256(b"\x89PNG roc").hexdigest()}
    assert registry.version_sha256("m", version.version) == before  # artifacts untouched
    assert registry.get("m", version.version).files == version.files
    with pytest.raises(RegistryError):
        registry.attach_report("m", 99, plots)
