"""Plan and apply a project's definitions, like `terraform plan` / `feast plan` and `apply`.

`project_spec` turns a project into plain data; `plan` compares it with the applied spec:
what is new, changed (and how), removed or unchanged. A change to what a versioned
definition stores (a group's table, a label's table, a view's training data) needs a new
`version`, or the plan is invalid. `fti.features.project.applied` records applied specs.

>>> from fti.features.project import Field, Stream, FeatureGroup, agg
>>> from pathlib import Path
>>> from fti.features.project.loader import Project
>>> pay = Stream("pay", topic="pay", event_time="ts",
...              fields=[Field("m"), Field("amount", "float"), Field("ts", "timestamp")])
>>> g = FeatureGroup("merchant", entity="m", stream=pay, aggregations=[agg.count(window="15m")])
>>> first = Project(Path("."), streams={"pay": pay}, groups={"merchant": g})
>>> print(plan(first, None).render())
+ stream pay (topic pay, 3 fields)
+ group merchant v1 (entity m, stream pay, 1 feature)
<BLANKLINE>
Plan: 2 to add, 0 to change, 0 to remove.
>>> g2 = FeatureGroup("merchant", entity="m", stream=pay, ttl="1d",
...                   aggregations=[agg.count(window="15m"),
...                                 agg.mean("amount", window="1h")])
>>> second = plan(Project(Path("."), streams={"pay": pay}, groups={"merchant": g2}),
...               project_spec(first))
>>> print(second.render())
~ group merchant v1:
    aggregations: + amount_mean_1h
    ttl: 604800 -> 86400
! group merchant v1: aggregations changed (+ amount_mean_1h); this changes the offline table,
  so bump version=2
<BLANKLINE>
Plan: 0 to add, 1 to change, 0 to remove; invalid: 1 error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fti.features.errors import DefinitionError
from fti.features.project.loader import DEFINITIONS, Project

__all__ = ["KINDS", "KIND_WORDS", "KindPlan", "Plan", "Spec", "plan", "project_spec"]

Spec = dict[str, Any]
KINDS = ("streams", "groups", "labels", "views", "models")
KIND_WORDS = {"streams": "stream", "groups": "group", "labels": "label", "views": "view",
              "models": "model"}
#: Keys whose change alters what a version stores, so they need a new version.
BREAKING: dict[str, frozenset[str]] = {
    "groups": frozenset({"entity", "stream", "features", "transformations", "aggregations"}),
    "labels": frozenset({"stream", "value"}),
    "views": frozenset({"label", "groups", "features"}),
}
_STORES = {"groups": "the offline table", "labels": "the label table",
           "views": "its training data"}


def project_spec(project: Project) -> dict[str, dict[str, Spec]]:
    """Every definition of the project as canonical plain data: kind -> name -> spec, names
    and keys sorted, JSON types only (what `apply` records and `check_applied` compares)."""
    out: dict[str, dict[str, Spec]] = {}
    for kind in KINDS:
        definitions = getattr(project, kind)
        out[kind] = {name: _canonical(_stable(definitions[name].spec(), project.module),
                                      f"{KIND_WORDS[kind]} {name}")
                     for name in sorted(definitions)}
    return out


def _stable(spec: Spec, module: str) -> Spec:
    """The spec without the per-load module name: a transformation defined in the
    definitions is named `definitions.<function>` whichever load imported it."""
    if module and "transformations" in spec:
        spec = {**spec, "transformations": [
            {**t, "function": re.sub(rf"^{re.escape(module)}(?=\.)", DEFINITIONS, t["function"])}
            for t in spec["transformations"]]}
    return spec


def _canonical(value: Any, where: str) -> Any:
    try:
        return json.loads(json.dumps(value, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as ex:
        raise DefinitionError(f"{where}: {ex}; a definition may hold only strings, numbers, "
                              "booleans, None, lists and dicts (check values=, min=, max=)"
                              ) from None


@dataclass(frozen=True)
class KindPlan:
    """What a plan does to one kind of definition: names new, changed (with what changed),
    removed and unchanged."""

    new: tuple[str, ...] = ()
    changed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """The difference between a project and the applied definitions, and why (if so) it
    cannot be applied."""

    spec: dict[str, dict[str, Spec]]
    applied: dict[str, dict[str, Spec]] | None
    kinds: Mapping[str, KindPlan]
    errors: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        """True when the plan can be applied."""
        return not self.errors

    @property
    def has_changes(self) -> bool:
        """True when applying it would record something new."""
        return any(k.new or k.changed or k.removed for k in self.kinds.values())

    @property
    def streams(self) -> KindPlan:
        """The plan for streams."""
        return self.kinds["streams"]

    @property
    def groups(self) -> KindPlan:
        """The plan for feature groups."""
        return self.kinds["groups"]

    @property
    def labels(self) -> KindPlan:
        """The plan for labels."""
        return self.kinds["labels"]

    @property
    def views(self) -> KindPlan:
        """The plan for feature views."""
        return self.kinds["views"]

    @property
    def models(self) -> KindPlan:
        """The plan for models."""
        return self.kinds["models"]

    def counts(self) -> tuple[int, int, int]:
        """Definitions to add, to change and to remove."""
        plans = self.kinds.values()
        return (sum(len(k.new) for k in plans), sum(len(k.changed) for k in plans),
                sum(len(k.removed) for k in plans))

    def check(self) -> None:
        """Raise `DefinitionError` with every error, on one line, when the plan is invalid."""
        if self.errors:
            raise DefinitionError("; ".join(self.errors))

    def render(self) -> str:
        """A readable summary: `+` new, `~` changed (with what changed), `-` removed, `!`
        errors, then `Plan: A to add, C to change, R to remove.` or `No changes.`"""
        lines = []
        for kind in KINDS:
            k, new, old = self.kinds[kind], self.spec[kind], (self.applied or {}).get(kind, {})
            for name in sorted({*k.new, *k.changed, *k.removed}):
                if name in k.new:
                    lines.append(f"+ {_title(kind, new[name])} ({_summary(kind, new[name])})")
                elif name in k.changed:
                    lines.append(f"~ {_title(kind, old[name], new[name])}:")
                    lines += [f"    {detail}" for detail in k.changed[name]]
                else:
                    lines.append(f"- {_title(kind, old[name])}")
        lines += [f"! {error}" for error in self.errors]
        add, change, remove = self.counts()
        if not (add or change or remove) and self.valid:
            return "\n".join([*lines, "No changes."])
        end = f"Plan: {add} to add, {change} to change, {remove} to remove"
        if self.errors:
            n = len(self.errors)
            end += f"; invalid: {n} error{'s' if n > 1 else ''}"
        return "\n".join([*lines, "", end + "."])



def _title(kind: str, old: Spec, new: Spec | None = None) -> str:
    title = f"{KIND_WORDS[kind]} {old['name']}"
    if "version" in old:
        title += f" v{old['version']}"
        if new is not None and new["version"] != old["version"]:
            title += f" -> v{new['version']}"
    return title


def _summary(kind: str, spec: Spec) -> str:
    if kind == "streams":
        return f"topic {spec['topic']}, {_count(len(spec['fields']), 'field')}"
    if kind == "groups":
        n = len(spec["features"]) + len(spec["transformations"]) + len(spec["aggregations"])
        return f"entity {spec['entity']}, stream {spec['stream']}, {_count(n, 'feature')}"
    if kind == "labels":
        return f"stream {spec['stream']}, value {spec['value']}"
    if kind == "models":
        return f"{spec['task']} on view {spec['view']}, trainer {spec['trainer']}"
    return (f"label {spec['label']}, groups {', '.join(spec['groups'])}, "
            f"{_count(len(spec['features']), 'feature')}")


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def plan(project: Project, applied: Mapping[str, Any] | None) -> Plan:
    """Compare `project` with an applied spec (`AppliedDefinitions.spec`, or None when
    nothing is applied yet): what is new, changed, removed and unchanged, and the errors
    that make it impossible to apply (a breaking change without a new version)."""
    spec = project_spec(project)
    before = {kind: dict((applied or {}).get(kind, {})) for kind in KINDS}
    kinds: dict[str, KindPlan] = {}
    errors: list[str] = []
    for kind in KINDS:
        new, old = spec[kind], before[kind]
        changed: dict[str, tuple[str, ...]] = {}
        for name in sorted(set(new) & set(old)):
            if new[name] == old[name] and not _input_changes(kind, old[name], new[name],
                                                             before, spec):
                continue
            details, error = _compare(kind, old[name], new[name], before, spec)
            changed[name] = tuple(details)
            errors += [error] if error else []
        kinds[kind] = KindPlan(
            new=tuple(sorted(set(new) - set(old))), changed=changed,
            removed=tuple(sorted(set(old) - set(new))),
            unchanged=tuple(sorted(n for n in set(new) & set(old) if n not in changed)))
    return Plan(spec, dict(applied) if applied is not None else None, kinds, tuple(errors))


def _compare(kind: str, old: Spec, new: Spec, before: Mapping[str, Mapping[str, Spec]],
             after: Mapping[str, Mapping[str, Spec]]) -> tuple[list[str], str | None]:
    """What changed in one definition, and the error when it needs a version it lacks."""
    details, breaking = [], []
    for key in _keys(old, new):
        if key == "name" or old.get(key) == new.get(key):
            continue
        what = _describe(old.get(key), new.get(key))
        details.append(f"{key}: {what}")
        if key in BREAKING.get(kind, ()):
            breaking.append(f"{key} changed ({what})")
    for stream, what in _input_changes(kind, old, new, before, after):
        details.append(f"stream {stream}: {what}")
        breaking.append(f"stream {stream} changed ({what})")
    if "version" not in new:
        return details, None
    word, was, now = KIND_WORDS[kind], old["version"], new["version"]
    if now < was:
        return details, (f"{word} {new['name']}: version {was} -> {now}; a version never goes "
                         f"back (its data may differ): use version={was + 1}")
    if breaking and now == was:
        return details, (f"{word} {new['name']} v{was}: {', '.join(breaking)}; this changes "
                         f"{_STORES[kind]}, so bump version={was + 1}")
    return details, None


def _input_changes(kind: str, old: Spec, new: Spec, before: Mapping[str, Mapping[str, Spec]],
                   after: Mapping[str, Mapping[str, Spec]]) -> list[tuple[str, str]]:
    """Changes to the stream a group or label reads that alter what it stores: the types of
    the fields a group reads and its stream's id; every field of a label's stream (its table
    keeps them all)."""
    if kind not in ("groups", "labels") or old["stream"] != new["stream"]:
        return []
    name = new["stream"]
    was, now = before["streams"].get(name), after["streams"].get(name)
    if was is None or now is None:
        return []
    types_was = {f["name"]: f["type"] for f in was["fields"]}
    types_now = {f["name"]: f["type"] for f in now["fields"]}
    if kind == "labels":
        return [(name, _describe(types_was, types_now))] if types_was != types_now else []
    used = [new["entity"], now["id"], *new["features"],
            *(a["field"] for a in new["aggregations"])]
    parts = [f"id: {_text(was['id'])} -> {_text(now['id'])}"] if was["id"] != now["id"] else []
    parts += [f"{f}: {_text(types_was.get(f))} -> {_text(types_now.get(f))}"
              for f in dict.fromkeys(u for u in used if u) if types_was.get(f) != types_now.get(f)]
    return [(name, ", ".join(parts))] if parts else []


def _keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return [*new, *(k for k in old if k not in new)]


def _describe(old: Any, new: Any) -> str:
    """A short account of a change: `+ a, - b, ~ c (window: 60 -> 120)` for named items,
    `+ x, - y` for lists, `old -> new` for anything else."""
    if isinstance(old, list) and isinstance(new, list):
        if all(isinstance(x, dict) and "name" in x for x in [*old, *new]):
            was, now = {x["name"]: x for x in old}, {x["name"]: x for x in new}
            parts = [f"+ {n}" for n in now if n not in was]
            parts += [f"- {n}" for n in was if n not in now]
            parts += [f"~ {n} ({_nested(was[n], now[n])})" for n in now
                      if n in was and was[n] != now[n]]
        else:
            texts_was, texts_now = [_text(x) for x in old], [_text(x) for x in new]
            parts = [f"+ {x}" for x in texts_now if x not in texts_was]
            parts += [f"- {x}" for x in texts_was if x not in texts_now]
        return ", ".join(parts) or "reordered"
    if isinstance(old, dict) and isinstance(new, dict):
        parts = [f"+ {k}: {_text(new[k])}" for k in new if k not in old]
        parts += [f"- {k}" for k in old if k not in new]
        parts += [f"~ {k}: {_text(old[k])} -> {_text(new[k])}" for k in new
                  if k in old and old[k] != new[k]]
        return ", ".join(parts)
    return f"{_text(old)} -> {_text(new)}"


def _nested(old: Spec, new: Spec) -> str:
    return ", ".join(f"{k}: {_describe(old.get(k), new.get(k))}" for k in _keys(old, new)
                     if old.get(k) != new.get(k))


def _text(value: Any) -> str:
    """A value as the user would recognise it: seconds without `.0`, lists in brackets."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return f"[{', '.join(_text(v) for v in value)}]"
    return str(value)
