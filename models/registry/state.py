"""The mutable state of one model: ``aliases.json``, ``approvals.json`` and ``history.jsonl``.

Version folders never change; everything that does lives in these three per-model files.
Each change updates its file and appends a history entry while holding the model's lock
(see :meth:`fti.models.registry.store.RegistryStore.lock` for what object stores can promise).

>>> import tempfile
>>> from fti.models.registry.store import RegistryStore
>>> state = ModelState(RegistryStore(tempfile.mkdtemp()), "m")
>>> state.set_alias("champion", 2, actor="ann").action
'promoted'
>>> state.aliases(), [(e.actor, e.to_version) for e in state.history()]
({'champion': 2}, [('ann', 2)])
"""

from __future__ import annotations

import json
import posixpath
from typing import Any, Literal

from fti.models.registry.history import (
    HISTORY_FILE,
    Action,
    HistoryEntry,
    alias_action,
    new_entry,
    parse_history,
)
from fti.models.registry.metadata import Approval
from fti.models.registry.store import RegistryStore

ALIASES_FILE = "aliases.json"
APPROVALS_FILE = "approvals.json"
Decision = Literal["approved", "rejected"]


class ModelState:
    """Aliases, approvals and history of one (already name-checked) model in ``store``."""

    def __init__(self, store: RegistryStore, model: str) -> None:
        self.store = store
        self.model_dir = store.path(model)

    def _file(self, name: str) -> str:
        return posixpath.join(self.model_dir, name)

    def aliases(self) -> dict[str, int]:
        """Every alias and the version it points to."""
        raw = self.store.read_bytes(self._file(ALIASES_FILE))
        return json.loads(raw) if raw else {}

    def approvals(self) -> dict[str, Approval]:
        """Current approval per version number (as a string); absent means "pending"."""
        raw = self.store.read_bytes(self._file(APPROVALS_FILE))
        return {k: Approval.model_validate(v) for k, v in json.loads(raw).items()} if raw else {}

    def rejected(self) -> frozenset[int]:
        """Version numbers whose approval is "rejected"."""
        return frozenset(int(v) for v, a in self.approvals().items() if a.status == "rejected")

    def history(self) -> list[HistoryEntry]:
        """Every recorded change, oldest first."""
        path = self._file(HISTORY_FILE)
        raw = self.store.read_bytes(path)
        return parse_history(raw.decode(), path) if raw else []

    def set_alias(
        self,
        name: str,
        version: int,
        *,
        action: Action | None = None,
        reason: str | None = None,
        actor: str | None = None,
        forced: bool = False,
    ) -> HistoryEntry:
        """Point alias ``name`` at ``version`` and record the move (default action by alias)."""
        with self.store.lock(self.model_dir):
            before = self.aliases().get(name)
            self.store.update(self._file(ALIASES_FILE), _set_key(name, version))
            entry = new_entry(action or alias_action(name), version, alias=name,
                              from_version=before, reason=reason, actor=actor, forced=forced)
            self._append(entry)
        return entry

    def decide(
        self, version: int, status: Decision, reason: str | None, actor: str | None
    ) -> HistoryEntry:
        """Record an approval decision about ``version`` and its history entry."""
        entry = new_entry(status, version, reason=reason, actor=actor)
        approval = Approval(status=status, by=entry.actor, at=entry.at, reason=reason)
        with self.store.lock(self.model_dir):
            self.store.update(
                self._file(APPROVALS_FILE),
                _set_key(str(version), approval.model_dump(mode="json")),
            )
            self._append(entry)
        return entry

    def _append(self, entry: HistoryEntry) -> None:
        self.store.append_line(self._file(HISTORY_FILE), entry.model_dump_json())


def _set_key(key: str, value: Any) -> Any:
    def change(before: bytes | None) -> bytes:
        data = json.loads(before) if before else {}
        data[key] = value
        return json.dumps(data, indent=2, sort_keys=True).encode()

    return change
