"""`fti registry list|show|promote|rollback|diff|approve|reject`: read and steer the registry.

Every change is recorded in the model's promotion history and announced on
``registry.events`` (promote, rollback; approve and reject once the event schema has kinds
for them). ``list``, ``show`` and ``diff`` print tables, or JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from fti.errors import RegistryError
from fti.events import RegistryEvent
from fti.models.registry import CHALLENGER, CHAMPION, HistoryEntry, ModelRegistry, ModelVersion
from fti.models.registry.diff import Changes, VersionDiff
from fti.settings import Settings

Publish = Callable[[RegistryEvent], None]


def add_registry_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``registry`` and its actions to the ``fti`` sub-command parsers; return it.

    >>> parser = argparse.ArgumentParser(prog="fti")
    >>> _ = add_registry_parser(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["registry", "promote", "3", "--alias", "challenger"])
    >>> args.action, args.ref, args.alias, args.model
    ('promote', '3', 'challenger', None)
    """
    doc = "List, show, compare, promote, roll back, approve or reject model versions."
    parser = subparsers.add_parser("registry", help=doc, description=doc)
    parser.set_defaults(handler=run_registry_command)
    parser.add_argument("--model", default=None,
                        help="default: FTI_TRAINING__MODEL_NAME, else the only model registered")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, text: str, json_flag: bool = False) -> argparse.ArgumentParser:
        p = actions.add_parser(name, help=text, description=text)
        p.add_argument("--model", default=argparse.SUPPRESS, help="default: the model setting")
        if json_flag:
            p.add_argument("--json", action="store_true", help="print JSON instead of a table")
        return p

    action("list", "versions with test AUC, gates, approval and aliases", json_flag=True)
    p = action("show", "metadata of one version: metrics, data, lineage, files", json_flag=True)
    p.add_argument("ref", nargs="?", default=CHAMPION, help="version or alias (default champion)")
    p = action("promote", "point champion (or challenger) at a version that passed its gates")
    p.add_argument("ref", help="version or alias, e.g. 3 or challenger")
    p.add_argument("--alias", default=CHAMPION, choices=[CHAMPION, CHALLENGER])
    p.add_argument("--force", action="store_true",
                   help="promote despite failed gates or a rejection (needs --reason)")
    p.add_argument("--reason", default=None, help="why; recorded in the history")
    p = action("rollback", "point an alias back at its previous version (from the history)")
    p.add_argument("--alias", default=CHAMPION, choices=[CHAMPION, CHALLENGER])
    p.add_argument("--reason", default=None, help="why; recorded in the history")
    p = action("diff", "what changed between two versions", json_flag=True)
    p.add_argument("a", help="baseline version or alias")
    p.add_argument("b", help="candidate version or alias")
    p = action("approve", "mark a version approved")
    p.add_argument("ref", help="version or alias")
    p.add_argument("--reason", default=None, help="why; recorded in the history")
    p = action("reject", "mark a version rejected: it cannot be promoted without --force")
    p.add_argument("ref", help="version or alias")
    p.add_argument("--reason", required=True, help="why; recorded in the history")
    return parser


def run_registry_command(
    args: argparse.Namespace, settings: Settings, publish: Publish | None = None
) -> int:
    """Carry out one registry action; changes publish a registry event through ``publish``
    (default: a ``RegistryEventPublisher`` to Kafka). Returns the exit code."""
    args = _with_defaults(args)
    registry = ModelRegistry(settings.registry_location)
    model = args.model or settings.training.model_name or _only_model(registry, args.action)
    if model is None:  # nothing registered yet
        print(f"no models in {registry.root}")
        return 1
    if args.action in ("list", "show", "diff"):
        return _READERS[args.action](registry, model, args)
    entry = _CHANGES[args.action](registry, model, args)
    event = registry.event_for(model, entry)
    if event is None:
        print(f"{model}: {_describe(entry)} (no registry event: the registry.events schema "
              f"has no kind for {entry.action!r} yet)")
        return 0
    if publish is None:
        from fti.models.jobs.trainer_service import RegistryEventPublisher

        publish = RegistryEventPublisher(settings)
    publish(event)
    print(f"{model}: {_describe(entry)} ({event.event} event published)")
    return 0


def _only_model(registry: ModelRegistry, action: str) -> str | None:
    """The registry's only model (None when it has none); several: an error naming them."""
    names = registry.model_names()
    if len(names) > 1:
        raise RegistryError(f"the registry holds {', '.join(names)}: name one with --model NAME "
                            "(or FTI_TRAINING__MODEL_NAME)")
    if not names and action not in _READERS:
        raise RegistryError(f"no models in {registry.root}: nothing to {action}")
    return names[0] if names else None


def _with_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill options an older ``fti registry ACTION [VERSION]`` parser did not define.

    >>> _with_defaults(argparse.Namespace(action="show", version=None, model=None)).ref
    'champion'
    """
    ref = getattr(args, "ref", None) or getattr(args, "version", None)
    if ref is None and args.action in ("show", "promote"):
        ref = CHAMPION if args.action == "show" else None
    if ref is None and args.action == "promote":
        raise RegistryError("promote needs a version: fti registry promote N")
    defaults = {"json": False, "alias": CHAMPION, "force": False, "reason": None,
                "model": None}
    return argparse.Namespace(**(defaults | vars(args) | {"ref": ref}))


# -- changes ---------------------------------------------------------------------------------


def _promote(registry: ModelRegistry, model: str, args: argparse.Namespace) -> HistoryEntry:
    version = registry.resolve(model, args.ref)
    return registry.promote(model, version, alias=args.alias, reason=args.reason,
                            force=args.force)


def _rollback(registry: ModelRegistry, model: str, args: argparse.Namespace) -> HistoryEntry:
    version = registry.rollback(model, args.reason, alias=args.alias)
    return next(e for e in reversed(registry.history(model)) if e.action == "rolled_back"
                and e.alias == args.alias and e.to_version == version)


def _approve(registry: ModelRegistry, model: str, args: argparse.Namespace) -> HistoryEntry:
    return registry.approve(model, registry.resolve(model, args.ref), args.reason)


def _reject(registry: ModelRegistry, model: str, args: argparse.Namespace) -> HistoryEntry:
    return registry.reject(model, registry.resolve(model, args.ref), args.reason)


_CHANGES: dict[str, Callable[[ModelRegistry, str, argparse.Namespace], HistoryEntry]] = {
    "promote": _promote, "rollback": _rollback, "approve": _approve, "reject": _reject,
}


def _describe(entry: HistoryEntry) -> str:
    """One line saying what a history entry changed.

    >>> from fti.models.registry.history import new_entry
    >>> _describe(new_entry("promoted", 3, alias="champion", from_version=2, actor="a"))
    'champion is now version 3 (was 2)'
    """
    if entry.alias is None:
        return f"version {entry.to_version} {entry.action}"
    was = "none" if entry.from_version is None else entry.from_version
    forced = ", forced" if entry.forced else ""
    return f"{entry.alias} is now version {entry.to_version} (was {was}{forced})"


# -- reading ---------------------------------------------------------------------------------


def _list(registry: ModelRegistry, model: str, args: argparse.Namespace) -> int:
    versions, aliases = registry.versions(model), registry.aliases(model)
    if args.json:
        rows = [_summary(v, aliases) for v in versions]
        print(json.dumps({"model": model, "aliases": aliases, "versions": rows}, indent=2))
        return 0 if versions else 1
    if not versions:
        print(f"no versions of {model} in {registry.root}")
        return 1
    print(list_table(versions, aliases))
    return 0


def _summary(version: ModelVersion, aliases: dict[str, int]) -> dict[str, Any]:
    return {
        "version": version.version,
        "created_at": version.created_at.isoformat(),
        "reason": version.reason,
        "roc_auc": version.metrics.get("roc_auc"),
        "gates_passed": version.gates.passed,
        "approval": version.approval.status,
        "aliases": sorted(a for a, n in aliases.items() if n == version.version),
        "promoted": version.promoted,
        "code_version": version.code_version,
        "device": version.device,
    }


def list_table(versions: list[ModelVersion], aliases: dict[str, int]) -> str:
    """The ``fti registry list`` table: one line per version."""
    lines = [f"{'version':>7}  {'created (UTC)':19}  {'reason':7}  {'test AUC':>8}  "
             f"{'gates':6}  {'approval':8}  aliases"]
    for v in versions:
        auc = v.metrics.get("roc_auc")
        names = ",".join(sorted(a for a, n in aliases.items() if n == v.version))
        lines.append(
            f"{v.version:>7}  {v.created_at:%Y-%m-%d %H:%M:%S}  {v.reason or '-':7}  "
            f"{'-' if auc is None else format(auc, '.4f'):>8}  "
            f"{'passed' if v.gates.passed else 'failed':6}  {v.approval.status:8}  {names}"
        .rstrip())
    return "\n".join(lines)


def _show(registry: ModelRegistry, model: str, args: argparse.Namespace) -> int:
    version = registry.get(model, registry.resolve(model, args.ref))
    aliases = sorted(a for a, n in registry.aliases(model).items() if n == version.version)
    if args.json:
        print(json.dumps(version.model_dump(mode="json") | {"aliases": aliases}, indent=2))
    else:
        print(show_text(version, aliases, registry.uri(model, version.version)))
    return 0


def show_text(version: ModelVersion, aliases: list[str], uri: str) -> str:
    """The ``fti registry show`` text: one labelled line per part of the metadata."""
    v = version
    gates = "passed" if v.gates.passed else "failed: " + "; ".join(v.gates.reasons)
    lineage = v.lineage.model_dump(mode="json") if v.lineage else {}
    rows: list[tuple[str, Any]] = [
        ("created", f"{v.created_at:%Y-%m-%d %H:%M:%S} UTC"),
        ("reason", v.reason),
        ("gates", gates),
        ("approval", _approval_text(v)),
        ("promoted", "yes" if v.promoted else "no"),
        ("code", v.code_version),
        ("device", v.device),
        ("metrics", _pairs(v.metrics)),
        ("champion on same test", _pairs(v.champion_metrics_on_same_test or {})),
        ("params", _pairs(v.params)),
        ("dataset", _pairs(_flat(v.dataset))),
        ("lineage", _pairs(_flat(lineage))),
        ("signature", _signature_text(v)),
        ("uri", uri),
    ]
    title = f"{v.model} version {v.version}" + (f"  ({', '.join(aliases)})" if aliases else "")
    lines = [title] + [f"  {k:22} {val}" for k, val in rows if val]
    lines += [f"  {'files' if i == 0 else '':22} {name}  {digest}"
              for i, (name, digest) in enumerate(sorted(v.files.items()))]
    return "\n".join(lines)


def _approval_text(version: ModelVersion) -> str:
    a = version.approval
    decided = f" by {a.by} at {a.at:%Y-%m-%d %H:%M:%S}" if a.by and a.at else ""
    return f"{a.status}{decided}" + (f": {a.reason}" if a.reason else "")


def _signature_text(version: ModelVersion) -> str | None:
    sig = version.signature
    if sig is None:
        return None
    out = f" -> {sig.output.name}:{sig.output.dtype}" if sig.output else ""
    return ", ".join(f"{c.name}:{c.dtype}" for c in sig.inputs) + out


def _flat(data: dict[str, Any]) -> dict[str, Any]:
    from fti.models.registry.diff import flatten

    return {k: val for k, val in flatten(data).items() if not isinstance(val, dict | list)}


def _pairs(data: dict[str, Any]) -> str:
    """``k=v`` pairs, floats to 4 decimals.

    >>> _pairs({"roc_auc": 0.98765, "rows": 10})
    'roc_auc=0.9877  rows=10'
    """
    return "  ".join(f"{k}={format(val, '.4f') if isinstance(val, float) else val}"
                     for k, val in data.items())


def _diff(registry: ModelRegistry, model: str, args: argparse.Namespace) -> int:
    result = registry.diff(model, args.a, args.b)
    print(result.model_dump_json(indent=2) if args.json else diff_text(result))
    return 0


def diff_text(diff: VersionDiff) -> str:
    """The ``fti registry diff`` text: metric deltas, then every changed section."""
    lines = [f"{diff.model}: version {diff.a} -> version {diff.b}", "", "metrics"]
    for name, m in diff.metrics.items():
        whole = isinstance(m.a, int) and isinstance(m.b, int)
        delta = "" if m.delta is None else f"{int(m.delta):+d}" if whole else f"{m.delta:+.4f}"
        lines.append(f"  {name:28} {_cell(m.a):>12} {_cell(m.b):>12} {delta:>10}")
    sections = [("params", diff.params), ("dataset", diff.dataset), ("lineage", diff.lineage),
                ("signature", diff.signature), ("files (sha256)", diff.files),
                ("other", diff.other)]
    for title, changes in sections:
        lines += ["", title, *(_change_lines(changes) or ["  (no changes)"])]
    return "\n".join(lines)


def _change_lines(changes: Changes) -> list[str]:
    out = [f"  + {k} = {_cell(v)}" for k, v in changes.added.items()]
    out += [f"  - {k} = {_cell(v)}" for k, v in changes.removed.items()]
    out += [f"  ~ {k}: {_cell(v['a'])} -> {_cell(v['b'])}" for k, v in changes.changed.items()]
    return out


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return format(value, ".4f")
    if isinstance(value, str) and len(value) == 64:
        return value[:12]  # a sha256: the prefix is enough to tell them apart
    return "-" if value is None else str(value)


_READERS: dict[str, Callable[[ModelRegistry, str, argparse.Namespace], int]] = {
    "list": _list, "show": _show, "diff": _diff,
}
