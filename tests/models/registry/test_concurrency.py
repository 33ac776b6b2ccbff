"""Concurrent writers: processes registering at once get distinct, complete versions; an explicit
version number is never taken twice."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from fti.errors import RegistryError
from fti.models.registry import ModelRegistry
from tests.models.registry.support import MODEL, PASSED, _open, _register


def _register_many(root: str, kind: str, worker: int, count: int, barrier: Any) -> None:
    """Spawned process: wait for the others, then register ``count`` versions."""
    registry = _open(root, kind)
    barrier.wait(60)
    for i in range(count):
        source = Path(root) / "sources" / f"w{worker}-{i}"
        source.mkdir(parents=True)
        (source / "model.ubj").write_bytes(f"worker {worker} model {i}".encode())
        registry.register(MODEL, source, gates=PASSED, card=None, params={"worker": worker})


def test_concurrent_registrations_get_distinct_complete_versions(
    tmp_path: Path, kind: str
) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_register_many, args=(str(tmp_path), kind, w, 3, barrier))
             for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    registry = _open(str(tmp_path), kind)
    assert registry.version_numbers(MODEL) == list(range(1, 13))
    contents = set()
    for v in registry.versions(MODEL):
        path = registry.artifact_path(MODEL, v.version, "model.ubj")  # sha256 matches metadata
        contents.add(path.read_bytes())
        assert path.read_bytes().startswith(f"worker {v.params['worker']} ".encode())
    assert len(contents) == 12  # nobody overwrote anybody


def test_an_explicit_version_number_is_never_taken_twice(
    tmp_path: Path, registry: ModelRegistry
) -> None:
    _register(registry, tmp_path, 1, version=5)
    with pytest.raises(RegistryError, match="version 5 already exists"):
        _register(registry, tmp_path, 2, version=5)
    assert registry.version_numbers(MODEL) == [5] and registry.next_version(MODEL) == 6
