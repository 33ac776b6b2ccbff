"""The applied definitions: `apply` records a project's spec as `v<N>.json` (plus its
sha256) in `<data_dir>/definitions/`, and services check that the project they load is the
applied one (`check_applied`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fti.features.errors import DefinitionError
from fti.features.project.loader import Project
from fti.features.project.plan import KIND_WORDS, KINDS, Spec, plan

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
    >>> from fti.features.project.fields import Field, Stream
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
        changes = [f"{sign} {KIND_WORDS[kind]} {name}" for kind in KINDS
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
