"""`fti registry list|show|promote|rollback`: read and steer the model registry."""

from __future__ import annotations

import argparse
import json

from fti.errors import FtiError
from fti.settings import Settings
from models.registry import CHAMPION, ModelRegistry


def _table(registry: ModelRegistry, model: str) -> str:
    champion = registry.alias(model)
    lines = [f"{'version':>7}  {'created (UTC)':19}  {'reason':7}  {'test AUC':>8}  "
             f"{'gates':6}  champion"]
    for v in registry.versions(model):
        auc = v.metrics.get("roc_auc")
        lines.append(
            f"{v.version:>7}  {v.created_at:%Y-%m-%d %H:%M:%S}  {v.reason or '-':7}  "
            f"{auc if auc is None else format(auc, '.4f'):>8}  "
            f"{'passed' if v.gates.passed else 'failed':6}  {'*' if v.version == champion else ''}"
        )
    return "\n".join(lines)


def run_registry_command(args: argparse.Namespace, settings: Settings) -> int:
    """Carry out one registry action; promote and rollback also publish a registry event."""
    from models.trainer_service import RegistryEventPublisher

    registry = ModelRegistry(settings.registry_dir)
    model = args.model or settings.training.model_name
    if args.action == "list":
        if not registry.versions(model):
            print(f"no versions of {model} in {settings.registry_dir}")
            return 1
        print(_table(registry, model))
        return 0
    if args.action == "show":
        version = args.version or registry.alias(model)
        if version is None:
            raise FtiError(f"{model} has no champion; name a version")
        print(json.dumps(registry.get(model, version).model_dump(mode="json"), indent=2))
        return 0
    if args.action == "promote":
        if args.version is None:
            raise FtiError("promote needs a version: fti registry promote N")
        registry.get(model, args.version)  # raises if it does not exist
        registry.set_alias(model, CHAMPION, args.version)
        event = registry.event(model, args.version, "promoted", CHAMPION)
    else:
        version = registry.rollback(model)
        event = registry.event(model, version, "rolled_back", CHAMPION)
    RegistryEventPublisher(settings)(event)
    print(f"{model}: champion is now version {event.version} ({event.event})")
    return 0
