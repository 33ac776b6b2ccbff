"""What changed between two model versions: metrics, params, data, lineage, code and files.

Pure functions over :class:`~fti.models.registry.metadata.ModelVersion`; no I/O.

>>> dict_changes({"lr": 0.1, "depth": 4}, {"lr": 0.2, "trees": 9})
{'added': {'trees': 9}, 'removed': {'depth': 4}, 'changed': {'lr': {'a': 0.1, 'b': 0.2}}}
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fti.models.registry.metadata import ModelVersion


class Changes(BaseModel):
    """Keys only in B (added), only in A (removed), and in both with different values."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    added: dict[str, Any] = Field(default_factory=dict)
    removed: dict[str, Any] = Field(default_factory=dict)
    changed: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


class MetricDelta(BaseModel):
    """One metric in A and B, and ``b - a`` when both are numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    a: Any = None
    b: Any = None
    delta: float | None = None


class VersionDiff(BaseModel):
    """Everything that differs between version ``a`` and version ``b`` of one model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    a: int
    b: int
    metrics: dict[str, MetricDelta]
    params: Changes
    dataset: Changes
    lineage: Changes
    signature: Changes
    files: Changes
    other: Changes = Field(description="gates, code version, device, approval, reason")


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level of dotted keys; lists and scalars are leaves.

    >>> flatten({"a": {"b": 1, "c": {"d": [2]}}, "e": None})
    {'a.b': 1, 'a.c.d': [2], 'e': None}
    """
    if not isinstance(value, dict):
        return {prefix: value} if prefix else {"": value}
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(item, dict) and item:
            out |= flatten(item, name)
        else:
            out[name] = item
    return out


def dict_changes(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Added, removed and changed keys between two flat dicts (as plain dicts)."""
    return _changes(a, b).model_dump()


def _changes(a: dict[str, Any], b: dict[str, Any]) -> Changes:
    return Changes(
        added={k: b[k] for k in b if k not in a},
        removed={k: a[k] for k in a if k not in b},
        changed={k: {"a": a[k], "b": b[k]} for k in a if k in b and a[k] != b[k]},
    )


def metric_deltas(a: dict[str, Any], b: dict[str, Any]) -> dict[str, MetricDelta]:
    """Every metric of A or B with its delta ``b - a`` (None unless both are numbers).

    >>> metric_deltas({"roc_auc": 0.9, "rows": 10}, {"roc_auc": 0.95})["roc_auc"].delta
    0.05
    """
    out = {}
    for name in sorted(set(a) | set(b)):
        x, y = a.get(name), b.get(name)
        numeric = all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y)
        )
        out[name] = MetricDelta(a=x, b=y, delta=round(y - x, 10) if numeric else None)
    return out


def diff_versions(a: ModelVersion, b: ModelVersion) -> VersionDiff:
    """Compare two versions of the same model, A the baseline and B the candidate."""

    def dumped(version: ModelVersion, field: str) -> dict[str, Any]:
        value = getattr(version, field)
        return flatten(value.model_dump(mode="json")) if value is not None else {}

    def other(version: ModelVersion) -> dict[str, Any]:
        return {
            "gates.passed": version.gates.passed,
            "gates.reasons": version.gates.reasons,
            "code_version": version.code_version,
            "device": version.device,
            "approval": version.approval.status,
            "reason": version.reason,
            "card": version.card,
        }

    return VersionDiff(
        model=b.model,
        a=a.version,
        b=b.version,
        metrics=metric_deltas(a.metrics, b.metrics),
        params=_changes(flatten(a.params), flatten(b.params)),
        dataset=_changes(flatten(a.dataset), flatten(b.dataset)),
        lineage=_changes(dumped(a, "lineage"), dumped(b, "lineage")),
        signature=_changes(_signature(a), _signature(b)),
        files=_changes(a.files, b.files),
        other=_changes(other(a), other(b)),
    )


def _signature(version: ModelVersion) -> dict[str, Any]:
    if version.signature is None:
        return {}
    out = {f"input.{c.name}": c.dtype for c in version.signature.inputs}
    out["input_order"] = [c.name for c in version.signature.inputs]
    if version.signature.output is not None:
        out[f"output.{version.signature.output.name}"] = version.signature.output.dtype
    return out
