"""Plan and apply a project's definitions, like `terraform plan` / `feast plan` and `apply`.

`project_spec` turns a project into plain data; `plan` compares it with the applied spec:
what is new, changed (and how), removed or unchanged. A change to what a versioned
definition stores (a group's table, a label's table, a view's training data) needs a new
`version`, or the plan is invalid. `apply` records the spec as `v<N>.json` in
`<data_dir>/definitions/` with its sha256, and services check that the project they load is
the applied one (`check_applied`).

>>> from fti.features.project.declare import Field, Stream, FeatureGroup, count, mean
>>> from fti.features.project.loader import Project
>>> pay = Stream("pay", topic="pay", event_time="ts",
...              fields=[Field("m"), Field("amount", "float"), Field("ts", "timestamp")])
>>> g = FeatureGroup("merchant", entity="m", stream=pay, aggregations=[count(window="15m")])
>>> first = Project(Path("."), streams={"pay": pay}, groups={"merchant": g})
>>> print(plan(first, None).render())
+ stream pay (topic pay, 3 fields)
+ group merchant v1 (entity m, stream pay, 1 feature)
<BLANKLINE>
Plan: 2 to add, 0 to change, 0 to remove.
>>> g2 = FeatureGroup("merchant", entity="m", stream=pay, ttl="1d",
...                   aggregations=[count(window="15m"), mean("amount", window="1h")])
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

import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fti.features.errors import DefinitionError
from fti.features.project.loader import DEFINITIONS, Project

__all__ = [
    "KINDS", "AppliedDefinitions", "KindPlan", "Plan", "applied", "apply", "check_applied",
    "definitions_dir", "plan", "project_spec",
]

Spec = dict[str, Any]
KINDS = ("streams", "groups", "labels", "views")
_WORD = {"streams": "stream", "groups": "group", "labels": "label", "views": "view"}
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
                                      f"{_WORD[kind]} {name}")
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
    title = f"{_WORD[kind]} {old['name']}"
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
    word, was, now = _WORD[kind], old["version"], new["version"]
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


# --- the applied definitions --------------------------------------------------------------

_VERSION_FILE = re.compile(r"v(\d+)\.json")


@dataclass(frozen=True)
class AppliedDefinitions:
    """One applied version: its number, spec (as `project_spec` gives it), the sha256 of its
    file, the file, and when it was applied (UTC, ISO 8601)."""

    version: int
    spec: dict[str, dict[str, Spec]]
    sha256: str
    path: Path
    applied_at: str


def definitions_dir(data_dir: Path | str) -> Path:
    """Where applied definitions live: `<data_dir>/definitions/`."""
    return Path(data_dir) / "definitions"


def applied(data_dir: Path | str) -> AppliedDefinitions | None:
    """The current applied definitions, their sha256 verified; None when nothing is applied.

    Raises `DefinitionError` when the files are missing, malformed or changed since.
    """
    folder = definitions_dir(data_dir)
    current = folder / "current"
    if not current.is_file():
        return None
    text = current.read_text().strip()
    match = re.fullmatch(r"v(\d+)", text)
    start_over = f"delete {current} and run `fti apply` to record the definitions again"
    if match is None:
        raise DefinitionError(f"{current} should name an applied version such as v3, not "
                              f"{text[:40]!r}: {start_over}")
    version = int(match.group(1))
    path, sha_path = folder / f"v{version}.json", folder / f"v{version}.sha256"
    try:
        data, recorded = path.read_bytes(), sha_path.read_text().split()
    except FileNotFoundError as ex:
        raise DefinitionError(f"{current} names v{version} but {ex.filename} is missing: "
                              f"restore it, or {start_over}") from None
    digest = hashlib.sha256(data).hexdigest()
    if not recorded or recorded[0] != digest:
        raise DefinitionError(f"{path} does not match the sha256 recorded in {sha_path.name} "
                              f"when it was applied: it was changed or damaged; restore it, "
                              f"or {start_over}")
    try:
        record = json.loads(data)
    except ValueError:
        record = None
    if (not isinstance(record, dict) or record.get("version") != version
            or not isinstance(record.get("spec"), dict)):
        raise DefinitionError(f"{path} is not an applied version {version}: {start_over}")
    return AppliedDefinitions(version, record["spec"], digest, path, record.get("applied_at", ""))


def apply(project: Project, data_dir: Path | str) -> AppliedDefinitions:
    """Record the project's definitions as the next version, when they differ from the
    current one (else return the current one). Refuses an invalid plan (`DefinitionError`).

    >>> import tempfile
    >>> from fti.features.project.declare import Field, Stream
    >>> s = Stream("s", topic="s", event_time="ts", fields=[Field("ts", "timestamp")])
    >>> data = Path(tempfile.mkdtemp())
    >>> first = apply(Project(Path("."), streams={"s": s}), data)
    >>> first.version, apply(Project(Path("."), streams={"s": s}), data).version
    (1, 1)
    >>> sorted(p.name for p in definitions_dir(data).iterdir())
    ['.lock', 'current', 'v1.json', 'v1.sha256']
    """
    folder = definitions_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder / ".lock"):
        current = applied(data_dir)
        result = plan(project, current.spec if current is not None else None)
        result.check()
        if current is not None and current.spec == result.spec:
            return current
        version = 1 + max((int(m.group(1)) for p in folder.iterdir()
                           if (m := _VERSION_FILE.fullmatch(p.name))), default=0)
        when = datetime.now(UTC).isoformat(timespec="seconds")
        record = {"version": version, "applied_at": when, "project": str(project.directory),
                  "spec": result.spec}
        data = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
        digest = hashlib.sha256(data).hexdigest()
        path = folder / f"v{version}.json"
        _write(path, data)
        _write(folder / f"v{version}.sha256", f"{digest}  {path.name}\n".encode())
        _write(folder / "current", f"v{version}\n".encode())  # last: readers see all or none
    return AppliedDefinitions(version, result.spec, digest, path, when)


def check_applied(project: Project, data_dir: Path | str) -> AppliedDefinitions:
    """The applied definitions, when they are exactly the project's; else `DefinitionError`
    saying to run `fti apply` (first time) or `fti plan` then `fti apply`."""
    current = applied(data_dir)
    if current is None:
        raise DefinitionError(f"nothing applied yet in {definitions_dir(data_dir)}: run "
                              "`fti apply`")
    result = plan(project, current.spec)
    if result.spec != current.spec:
        changes = [f"{sign} {_WORD[kind]} {name}" for kind in KINDS
                   for sign, names in (("+", result.kinds[kind].new),
                                       ("~", result.kinds[kind].changed),
                                       ("-", result.kinds[kind].removed)) for name in names]
        raise DefinitionError(f"definitions changed since the last `fti apply` (v"
                              f"{current.version}: {', '.join(changes)}): run `fti plan` then "
                              "`fti apply`")
    return current


def _write(path: Path, data: bytes) -> None:
    """Write a file whole or not at all: a temporary file, synced, renamed over it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path`, so two `fti apply` runs cannot take one number."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
