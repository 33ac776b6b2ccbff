"""What changed between two versions: metrics, params, dataset, lineage and files."""

from __future__ import annotations

from pathlib import Path

import pytest

from fti.models.registry import ModelRegistry
from tests.models.registry.support import MODEL, _register


def test_diff(tmp_path: Path, registry: ModelRegistry) -> None:
    _register(registry, tmp_path, 1, params={"eta": 0.1, "depth": 4},
              dataset={"version": 1, "rows": 100}, lineage={"dataset_version": 1})
    _register(registry, tmp_path, 2, params={"eta": 0.2, "depth": 4, "trees": 50},
              dataset={"version": 2, "rows": 100}, lineage={"dataset_version": 2})
    registry.promote(MODEL, 1)
    diff = registry.diff(MODEL, "champion", 2)
    assert (diff.a, diff.b) == (1, 2)
    assert diff.metrics["roc_auc"].delta == pytest.approx(0.01)
    assert diff.params.changed == {"eta": {"a": 0.1, "b": 0.2}}
    assert diff.params.added == {"trees": 50} and not diff.params.removed
    assert diff.dataset.changed == {"version": {"a": 1, "b": 2}}
    assert diff.lineage.changed == {"dataset_version": {"a": 1, "b": 2}}
    assert set(diff.files.changed) == {"model.ubj", "model_card.md"}
    assert not diff.other
