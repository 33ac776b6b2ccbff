"""The promotion history of a model: an append-only ``history.jsonl``, one change per line.

Every change to a model's mutable state (aliases, approvals) appends who did what, when and
why. Rollback replays the history of an alias as a stack: a promotion pushes, a rollback
pops, so rolling back twice walks back through two earlier champions.

>>> from datetime import UTC, datetime
>>> at = datetime(2026, 1, 1, tzinfo=UTC)
>>> entries = [HistoryEntry(at=at, actor="ann", action="promoted", alias="champion",
...                         from_version=None, to_version=1),
...            HistoryEntry(at=at, actor="ann", action="promoted", alias="champion",
...                         from_version=1, to_version=3)]
>>> alias_stack(entries, "champion")
[1, 3]
>>> previous_version(entries, "champion", current=3)
1
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

from fti.errors import RegistryError
from fti.events import RegistryEvent

HISTORY_FILE = "history.jsonl"
CHAMPION = "champion"
CHALLENGER = "challenger"

Action = Literal["promoted", "rolled_back", "approved", "rejected", "challenger_set", "alias_set"]
ALIAS_ACTIONS = ("promoted", "rolled_back", "challenger_set", "alias_set")


class HistoryEntry(BaseModel):
    """One change: ``actor`` did ``action`` at ``at`` because ``reason``.

    Alias changes name the alias and its move ``from_version`` → ``to_version``; approval
    changes name the version in ``to_version``. ``forced`` marks a promotion that overrode a
    failed gate or a rejection.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: datetime
    actor: str
    action: Action
    alias: str | None = None
    from_version: int | None = None
    to_version: int
    reason: str | None = None
    forced: bool = False


def default_actor() -> str:
    """Who is acting: ``$USER``, else the login name, else ``"fti"``.

    >>> isinstance(default_actor(), str)
    True
    """
    user = os.environ.get("USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "fti"


def new_entry(
    action: Action,
    to_version: int,
    *,
    alias: str | None = None,
    from_version: int | None = None,
    reason: str | None = None,
    actor: str | None = None,
    forced: bool = False,
) -> HistoryEntry:
    """A history entry stamped with the current time and actor.

    >>> new_entry("approved", 2, actor="bob", reason="looks good").action
    'approved'
    """
    return HistoryEntry(
        at=datetime.now(UTC), actor=actor or default_actor(), action=action, alias=alias,
        from_version=from_version, to_version=to_version, reason=reason, forced=forced,
    )


def alias_action(alias: str) -> Action:
    """The history action for pointing ``alias`` at a version.

    >>> alias_action("champion"), alias_action("challenger"), alias_action("shadow")
    ('promoted', 'challenger_set', 'alias_set')
    """
    return {CHAMPION: "promoted", CHALLENGER: "challenger_set"}.get(alias, "alias_set")


def parse_history(text: str, source: str = HISTORY_FILE) -> list[HistoryEntry]:
    """Entries of a ``history.jsonl`` text; a torn last line (no newline yet) is ignored.

    >>> line = ('{"at": "2026-01-01T00:00:00Z", "actor": "a", "action": "approved", '
    ...         '"to_version": 1}')
    >>> [e.to_version for e in parse_history(line + "\\n" + '{"at": "20')]
    [1]
    """
    lines = text.split("\n")
    complete, torn = lines[:-1], lines[-1]
    entries = []
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            entries.append(HistoryEntry.model_validate_json(line))
        except ValidationError as ex:
            raise RegistryError(
                f"{source} line {number} is not a history entry: {ex.errors()[0]['msg']}; "
                "the history is append-only, restore the line from a backup"
            ) from None
    if torn.strip():
        try:  # written by a writer without the final newline: still a whole entry
            entries.append(HistoryEntry.model_validate_json(torn))
        except ValidationError:
            pass  # a line being appended right now; it is complete on the next read
    return entries


def alias_stack(entries: Iterable[HistoryEntry], alias: str) -> list[int]:
    """Replay the moves of ``alias``: promotions push, rollbacks pop back to their target.

    >>> from datetime import UTC, datetime
    >>> e = lambda action, frm, to: HistoryEntry(at=datetime.now(UTC), actor="a",
    ...     action=action, alias="champion", from_version=frm, to_version=to)
    >>> alias_stack([e("promoted", None, 1), e("promoted", 1, 2), e("promoted", 2, 4),
    ...              e("rolled_back", 4, 1)], "champion")
    [1]
    """
    stack: list[int] = []
    for entry in entries:
        if entry.alias != alias or entry.action not in ALIAS_ACTIONS:
            continue
        if entry.action == "rolled_back":
            while stack and stack[-1] != entry.to_version:
                stack.pop()
            if not stack:
                stack.append(entry.to_version)
        elif not stack or stack[-1] != entry.to_version:
            stack.append(entry.to_version)
    return stack


def previous_version(
    entries: Iterable[HistoryEntry], alias: str, current: int, skip: frozenset[int] = frozenset()
) -> int | None:
    """The version ``alias`` pointed at before ``current``, skipping ``skip`` (e.g. rejected).

    Returns None when the history does not end at ``current`` (it was changed outside the
    registry, or predates the history), so the caller can fall back. Raises RegistryError
    when the history is consistent but holds no earlier version.
    """
    stack = alias_stack(entries, alias)
    if not stack or stack[-1] != current:
        return None
    for version in reversed(stack[:-1]):
        if version != current and version not in skip:
            return version
    raise RegistryError(
        f"no promoted version before {alias} {current} in the promotion history; "
        "nothing to roll back to"
    )


def supported_event_kinds() -> frozenset[str]:
    """The ``event`` kinds the ``registry.events`` schema accepts today.

    >>> {"registered", "promoted", "rolled_back"} <= supported_event_kinds()
    True
    """
    return frozenset(get_args(RegistryEvent.model_fields["event"].annotation))


def event_kind(action: Action) -> str | None:
    """The ``registry.events`` kind announcing a history action, or None if the schema has none.

    Alias moves are "promoted" (the event's ``alias`` says which alias) or "rolled_back";
    "approved" and "rejected" are announced once ``RegistryEvent.event`` accepts them.

    >>> event_kind("challenger_set"), event_kind("rolled_back")
    ('promoted', 'rolled_back')
    """
    kind = {"challenger_set": "promoted", "alias_set": "promoted"}.get(action, action)
    return kind if kind in supported_event_kinds() else None
