"""Fixtures of the registry tests: each `registry` test runs on a local path and on a
SubTreeFileSystem bucket prefix; every change is made by user "ann"."""

from __future__ import annotations

from pathlib import Path

import pytest

from fti.models.registry import ModelRegistry
from tests.models.registry.support import KINDS, _open


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def registry(tmp_path: Path, kind: str) -> ModelRegistry:
    return _open(str(tmp_path), kind)


@pytest.fixture(autouse=True)
def user(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("USER", "ann")
    return "ann"
