"""What the registry stores about a version: ``metadata.json`` and its parts, plus name checks.

``metadata.json`` is written once, with the version, and never changed. The only part of
:class:`ModelVersion` that can change later is ``approval``: the registry overlays the current
approval (kept in the model's ``approvals.json``) when it reads a version.

>>> v = ModelVersion.model_validate_json(
...     '{"model": "m", "version": 1, "created_at": "2026-01-01T00:00:00Z",'
...     ' "files": {"model.ubj": "ab"}, "gates": {"passed": true}}')
>>> v.approval.status, v.signature, v.code_version
('pending', None, None)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime
from functools import cache
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fti.errors import RegistryError

METADATA_FILE = "metadata.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

ApprovalStatus = Literal["pending", "approved", "rejected"]


class GateRecord(BaseModel):
    """Outcome of the promotion gates as stored with a version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    passed: bool
    reasons: list[str] = Field(default_factory=list)


class Column(BaseModel):
    """One named, typed input or output of a model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    dtype: str


class Signature(BaseModel):
    """The inputs a model expects (in order) and the output it returns.

    >>> Signature.of(["amount", "hour"], "float32", output=("score", "float32")).inputs[1].name
    'hour'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: list[Column]
    output: Column | None = None

    @classmethod
    def of(
        cls, names: Iterable[str], dtype: str, output: tuple[str, str] | None = None
    ) -> Signature:
        """A signature whose inputs all share one dtype."""
        out = None if output is None else Column(name=output[0], dtype=output[1])
        return cls(inputs=[Column(name=n, dtype=dtype) for n in names], output=out)


class Lineage(BaseModel):
    """Where the training data came from: feature view, dataset version, table versions read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feature_view: str | None = None
    dataset_version: int | str | None = None
    table_versions: dict[str, int] = Field(default_factory=dict)


class Approval(BaseModel):
    """A human decision about a version: who decided what, when and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: ApprovalStatus = "pending"
    by: str | None = None
    at: datetime | None = None
    reason: str | None = None


class ModelVersion(BaseModel):
    """Metadata of one registered model version (``metadata.json``).

    Every field added after the first release is optional, so older ``metadata.json`` files
    still load.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model: str
    version: int
    created_at: datetime
    files: dict[str, str] = Field(description="artifact file name -> sha256")
    metrics: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    dataset: dict[str, Any] = Field(default_factory=dict)
    champion_metrics_on_same_test: dict[str, Any] | None = None
    champion_version: int | None = None
    gates: GateRecord
    promoted: bool = False
    card: str | None = "model_card.md"
    reason: str | None = None
    signature: Signature | None = None
    lineage: Lineage | None = None
    code_version: str | None = None
    device: str | None = None
    approval: Approval = Field(
        default_factory=Approval,
        description="as read: the current approval; as stored: the approval at registration",
    )


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_name(kind: str, name: str) -> str:
    """Return ``name`` if it is a safe model, alias or file name, else raise RegistryError.

    >>> check_name("model", "risk-xgb")
    'risk-xgb'
    >>> check_name("model", "../etc")
    Traceback (most recent call last):
    ...
    fti.errors.RegistryError: model name must match [A-Za-z0-9][A-Za-z0-9._-]{0,127}, got '../etc'
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise RegistryError(f"{kind} name must match {_NAME.pattern[1:-1]}, got {name!r}")
    return name


def check_version(version: int) -> int:
    """Return ``version`` if it is an integer >= 1, else raise RegistryError.

    >>> check_version(3)
    3
    >>> check_version(True)
    Traceback (most recent call last):
    ...
    fti.errors.RegistryError: version must be an integer >= 1, got True
    """
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RegistryError(f"version must be an integer >= 1, got {version!r}")
    return version


def gate_record(gates: GateRecord | dict[str, Any] | Any) -> GateRecord:
    """Accept a GateRecord, a dict, or any object with ``passed`` and ``reasons``.

    >>> gate_record({"passed": False, "reasons": ["auc"]}).reasons
    ['auc']
    """
    if isinstance(gates, GateRecord | dict):
        return GateRecord.model_validate(gates)
    return GateRecord(passed=gates.passed, reasons=list(gates.reasons))


def promotion_problems(version: ModelVersion) -> list[str]:
    """Why a version may not be promoted: failed gates, a rejection (empty: it may).

    >>> from datetime import UTC
    >>> v = ModelVersion(model="m", version=2, created_at=datetime(2026, 1, 1, tzinfo=UTC),
    ...                  files={}, gates={"passed": False, "reasons": ["roc_auc 0.6 < 0.75"]})
    >>> promotion_problems(v)
    ['gates failed (roc_auc 0.6 < 0.75)']
    """
    problems = []
    if not version.gates.passed:
        problems.append(f"gates failed ({'; '.join(version.gates.reasons) or 'no reason'})")
    if version.approval.status == "rejected":
        by = f" by {version.approval.by}" if version.approval.by else ""
        problems.append(f"approval rejected{by} ({version.approval.reason or 'no reason'})")
    return problems


@cache
def detect_code_version() -> str:
    """The git commit of the working tree holding this code, else ``fti==<package version>``.

    HEAD is resolved by reading ``.git`` (loose refs, ``packed-refs``, worktrees) rather than
    running ``git``, so it works without git installed and costs no subprocess.
    """
    commit = git_head(Path(__file__).resolve().parent)
    if commit is not None:
        return commit
    try:
        return f"fti=={package_metadata.version('fti')}"
    except package_metadata.PackageNotFoundError:
        return "unknown"


def git_head(start: Path) -> str | None:
    """The commit HEAD points at in the git checkout containing ``start``, or None.

    >>> git_head(Path("/")) is None or len(git_head(Path("/"))) == 40
    True
    """
    git_dir = _find_git_dir(start)
    if git_dir is None:
        return None
    try:
        head = (git_dir / "HEAD").read_text().strip()
    except OSError:
        return None
    if not head.startswith("ref:"):
        return head if re.fullmatch(r"[0-9a-f]{40,64}", head) else None
    return _resolve_ref(git_dir, head[4:].strip())


def _find_git_dir(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        dot_git = folder / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.is_file():  # a worktree or submodule: "gitdir: <path>"
            text = dot_git.read_text().strip()
            if text.startswith("gitdir:"):
                return (folder / text[7:].strip()).resolve()
    return None


def _resolve_ref(git_dir: Path, ref: str) -> str | None:
    common = git_dir
    if (git_dir / "commondir").is_file():
        common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
    for folder in (git_dir, common):
        loose = folder / ref
        if loose.is_file():
            return loose.read_text().strip() or None
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref:
                return parts[0]
    return None
