"""Approvals, aliases and the promotion history: who changed what, rollback along the history,
promotion refused for failed gates unless forced with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from fti.errors import RegistryError
from fti.models.registry import ModelRegistry
from tests.models.registry.support import FAILED, MODEL, PASSED, _register


def test_approval_flow(tmp_path: Path, registry: ModelRegistry) -> None:
    _register(registry, tmp_path, 1)
    assert registry.approval(MODEL, 1).status == "pending"
    entry = registry.approve(MODEL, 1, "reviewed the card")
    approval = registry.approval(MODEL, 1)
    assert (approval.status, approval.by, approval.reason) == ("approved", "ann",
                                                               "reviewed the card")
    assert approval.at == entry.at
    with pytest.raises(RegistryError, match="needs a reason"):
        registry.reject(MODEL, 1, " ")
    registry.reject(MODEL, 1, "bias on country=FR", actor="bob")
    assert registry.approval(MODEL, 1).status == "rejected"
    with pytest.raises(RegistryError, match="approval rejected by bob"):
        registry.promote(MODEL, 1)
    assert [(e.action, e.actor) for e in registry.history(MODEL)] == [
        ("approved", "ann"), ("rejected", "bob")]


def test_challenger_alias(tmp_path: Path, registry: ModelRegistry) -> None:
    for n in (1, 2):
        _register(registry, tmp_path, n)
    registry.promote(MODEL, 1)
    entry = registry.promote(MODEL, 2, alias="challenger", reason="shadow traffic")
    assert registry.aliases(MODEL) == {"champion": 1, "challenger": 2}
    assert (entry.action, entry.alias, entry.from_version) == ("challenger_set", "challenger",
                                                               None)
    event = registry.event_for(MODEL, entry)
    assert (event.event, event.alias, event.version) == ("promoted", "challenger", 2)
    assert registry.resolve(MODEL, "challenger") == 2
    registry.promote(MODEL, registry.resolve(MODEL, "challenger"))
    assert registry.alias(MODEL) == 2


def test_history_records_every_change(tmp_path: Path, registry: ModelRegistry) -> None:
    for n in (1, 2, 3):
        _register(registry, tmp_path, n, gates=FAILED if n == 3 else PASSED)
    registry.promote(MODEL, 1, reason="first")
    registry.promote(MODEL, 2, alias="challenger")
    registry.approve(MODEL, 2)
    registry.promote(MODEL, 2, reason="won the shadow test")
    registry.promote(MODEL, 3, force=True, reason="hotfix, gates are wrong")
    registry.rollback(MODEL, "hotfix broke scoring")
    registry.set_alias(MODEL, "shadow", 1)
    history = registry.history(MODEL)
    assert [(e.action, e.alias, e.from_version, e.to_version, e.forced) for e in history] == [
        ("promoted", "champion", None, 1, False),
        ("challenger_set", "challenger", None, 2, False),
        ("approved", None, None, 2, False),
        ("promoted", "champion", 1, 2, False),
        ("promoted", "champion", 2, 3, True),
        ("rolled_back", "champion", 3, 2, False),
        ("alias_set", "shadow", None, 1, False),
    ]
    assert history[4].reason == "hotfix, gates are wrong" and {e.actor for e in history} == {
        "ann"}
    assert [e.at for e in history] == sorted(e.at for e in history)
    lines = (Path(registry.root) / MODEL / "history.jsonl").read_text().splitlines()
    assert len(lines) == len(history)


def test_rollback_follows_the_history_not_version_order(
    tmp_path: Path, registry: ModelRegistry
) -> None:
    for n in (1, 2, 3):
        _register(registry, tmp_path, n, promoted=True)
    for n in (1, 3, 2):
        registry.promote(MODEL, n)
    assert registry.rollback(MODEL, "2 misbehaves") == 3  # "older promoted" would say 1
    assert registry.rollback(MODEL) == 1
    with pytest.raises(RegistryError, match="no promoted version before champion 1"):
        registry.rollback(MODEL)
    assert registry.alias(MODEL) == 1


def test_rollback_skips_rejected_versions(tmp_path: Path, registry: ModelRegistry) -> None:
    for n in (1, 2, 3):
        _register(registry, tmp_path, n)
        registry.promote(MODEL, n)
    registry.reject(MODEL, 2, "leaks labels")
    assert registry.rollback(MODEL) == 1
    assert registry.history(MODEL)[-1].from_version == 3


def test_promote_refuses_a_version_whose_gates_failed(
    tmp_path: Path, registry: ModelRegistry
) -> None:
    _register(registry, tmp_path, 1, gates=FAILED)
    with pytest.raises(RegistryError, match=r"gates failed \(roc_auc 0.61 < min 0.75\)"):
        registry.promote(MODEL, 1)
    with pytest.raises(RegistryError, match="forced promotion needs a reason"):
        registry.promote(MODEL, 1, force=True)
    assert registry.alias(MODEL) is None and registry.history(MODEL) == []
    entry = registry.promote(MODEL, 1, force=True, reason="incident 42")
    assert registry.alias(MODEL) == 1 and entry.forced and entry.reason == "incident 42"
