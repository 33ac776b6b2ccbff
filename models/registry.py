"""The model registry: a directory of immutable versions plus an alias file per model.

Layout::

    root/<model>/<version>/            artifact files + metadata.json, never changed once written
    root/<model>/aliases.json          {"champion": 3}, replaced atomically

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> source = root / "src"
>>> source.mkdir()
>>> _ = (source / "model.ubj").write_bytes(b"weights")
>>> registry = ModelRegistry(root / "registry")
>>> v = registry.register("fraud-xgb", source, gates={"passed": True, "reasons": []}, card=None)
>>> v.version, v.files["model.ubj"][:12]
(1, '9a129038d9a0')
>>> registry.set_alias("fraud-xgb", "champion", 1)
>>> registry.alias("fraud-xgb")
1
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fti.errors import RegistryError
from fti.events import RegistryEvent

METADATA_FILE = "metadata.json"
ALIASES_FILE = "aliases.json"
CHAMPION = "champion"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_TAKEN = (errno.EEXIST, errno.ENOTEMPTY)
_READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


class GateRecord(BaseModel):
    """Outcome of the promotion gates as stored with a version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    passed: bool
    reasons: list[str] = Field(default_factory=list)


class ModelVersion(BaseModel):
    """Metadata of one registered model version (``metadata.json``)."""

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


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_name(kind: str, name: str) -> str:
    """Return ``name`` if it is a safe model, alias or file name, else raise RegistryError.

    >>> check_name("model", "fraud-xgb")
    'fraud-xgb'
    >>> check_name("model", "../etc")
    Traceback (most recent call last):
    ...
    fti.errors.RegistryError: model name must match [A-Za-z0-9][A-Za-z0-9._-]{0,127}, got '../etc'
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise RegistryError(f"{kind} name must match {_NAME.pattern[1:-1]}, got {name!r}")
    return name


def _gate_record(gates: GateRecord | dict[str, Any] | Any) -> GateRecord:
    """Accept a GateRecord, a dict, or any object with ``passed`` and ``reasons``."""
    if isinstance(gates, GateRecord | dict):
        return GateRecord.model_validate(gates)
    return GateRecord(passed=gates.passed, reasons=list(gates.reasons))


def _check_version(version: int) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RegistryError(f"version must be an integer >= 1, got {version!r}")
    return version


class ModelRegistry:
    """Registered model versions under ``root``; see the module docstring for the layout."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _model_dir(self, model: str) -> Path:
        return self.root / check_name("model", model)

    def _version_dir(self, model: str, version: int) -> Path:
        return self._model_dir(model) / str(_check_version(version))

    def version_numbers(self, model: str) -> list[int]:
        """Registered version numbers of ``model``, ascending (empty if none)."""
        model_dir = self._model_dir(model)
        if not model_dir.is_dir():
            return []
        return sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit())

    def next_version(self, model: str) -> int:
        """The version number the next ``register`` call will get (if nobody registers first)."""
        return max(self.version_numbers(model), default=0) + 1

    def register(
        self,
        model: str,
        source_dir: Path,
        *,
        gates: GateRecord | dict[str, Any] | Any,
        metrics: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        dataset: dict[str, Any] | None = None,
        champion_metrics_on_same_test: dict[str, Any] | None = None,
        champion_version: int | None = None,
        promoted: bool = False,
        card: str | None = "model_card.md",
        reason: str | None = None,
        version: int | None = None,
    ) -> ModelVersion:
        """Copy the files of ``source_dir`` into a new immutable version and return its metadata.

        The version is the highest existing one + 1; pass ``version`` to insist on a number
        (e.g. one already written into the model card) and fail if it is taken.
        """
        model_dir = self._model_dir(model)
        model_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=model_dir))
        try:
            files = self._stage_files(Path(source_dir), staging)
            if card is not None and card not in files:
                raise RegistryError(f"model card {card!r} is not among the files {sorted(files)}")
            fields = dict(
                model=model,
                created_at=datetime.now(UTC),
                files=files,
                metrics=metrics or {},
                params=params or {},
                dataset=dataset or {},
                gates=_gate_record(gates),
                champion_metrics_on_same_test=champion_metrics_on_same_test,
                champion_version=champion_version,
                promoted=promoted,
                card=card,
                reason=reason,
            )
            return self._publish_staged(model, staging, fields, version)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _stage_files(self, source_dir: Path, staging: Path) -> dict[str, str]:
        if not source_dir.is_dir():
            raise RegistryError(f"source directory {source_dir} does not exist")
        files: dict[str, str] = {}
        for path in sorted(source_dir.iterdir()):
            name = check_name("file", path.name)
            if name == METADATA_FILE or not path.is_file() or path.is_symlink():
                raise RegistryError(
                    f"{path} cannot be registered: artifacts are plain files, not {METADATA_FILE}"
                )
            shutil.copyfile(path, staging / name)
            files[name] = sha256_file(staging / name)
            os.chmod(staging / name, _READ_ONLY)
        if not files:
            raise RegistryError(f"source directory {source_dir} holds no artifact files")
        return files

    def _publish_staged(
        self, model: str, staging: Path, fields: dict[str, Any], version: int | None
    ) -> ModelVersion:
        for _attempt in range(100):
            number = self.next_version(model) if version is None else _check_version(version)
            metadata = ModelVersion(version=number, **fields)
            (staging / METADATA_FILE).write_text(metadata.model_dump_json(indent=2))
            target = self._version_dir(model, number)
            try:
                if target.exists():
                    raise FileExistsError(target)
                os.rename(staging, target)  # atomic; fails if another writer created target
                return metadata
            except OSError as ex:
                if not isinstance(ex, FileExistsError) and ex.errno not in _TAKEN:
                    raise
                if version is not None:
                    raise RegistryError(f"{model} version {version} already exists") from ex
        raise RegistryError(f"could not find a free version number for {model}")

    def versions(self, model: str) -> list[ModelVersion]:
        """Metadata of every version of ``model``, oldest first."""
        return [self.get(model, number) for number in self.version_numbers(model)]

    def get(self, model: str, version: int) -> ModelVersion:
        """Metadata of one version; RegistryError if it does not exist."""
        path = self._version_dir(model, version) / METADATA_FILE
        if not path.is_file():
            raise RegistryError(
                f"{model} version {version} not found (have {self.version_numbers(model)})"
            )
        return ModelVersion.model_validate_json(path.read_text())

    def aliases(self, model: str) -> dict[str, int]:
        """Every alias of ``model`` and the version it points to."""
        path = self._model_dir(model) / ALIASES_FILE
        return json.loads(path.read_text()) if path.is_file() else {}

    def alias(self, model: str, name: str = CHAMPION) -> int | None:
        """The version an alias points to, or None if it is not set."""
        return self.aliases(model).get(check_name("alias", name))

    def set_alias(self, model: str, name: str, version: int) -> None:
        """Point alias ``name`` at an existing version; the alias file is replaced atomically."""
        self.get(model, version)
        aliases = self.aliases(model) | {check_name("alias", name): version}
        model_dir = self._model_dir(model)
        fd, temp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=model_dir)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(aliases, handle, indent=2, sort_keys=True)
            os.replace(temp, model_dir / ALIASES_FILE)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def rollback(self, model: str) -> int:
        """Point the champion at the newest promoted version older than it; return that version."""
        current = self.alias(model, CHAMPION)
        if current is None:
            raise RegistryError(f"{model} has no champion to roll back from")
        earlier = [v.version for v in self.versions(model) if v.promoted and v.version < current]
        if not earlier:
            raise RegistryError(
                f"{model} has no promoted version before champion {current}; "
                "nothing to roll back to"
            )
        self.set_alias(model, CHAMPION, earlier[-1])
        return earlier[-1]

    def artifact_path(self, model: str, version: int, file: str) -> Path:
        """Path of an artifact file after checking its sha256 against the metadata."""
        metadata = self.get(model, version)
        expected = metadata.files.get(check_name("file", file))
        if expected is None:
            raise RegistryError(f"{model} version {version} has no file {file!r}")
        path = self._version_dir(model, version) / file
        if not path.is_file():
            raise RegistryError(f"{model} version {version}: file {file!r} is missing at {path}")
        actual = sha256_file(path)
        if actual != expected:
            raise RegistryError(
                f"{model} version {version}: {file} sha256 mismatch, expected {expected}, "
                f"actual {actual}; the artifact was modified or corrupted, do not load it"
            )
        return path

    def uri(self, model: str, version: int) -> str:
        """``file://`` URI of a version directory."""
        return self._version_dir(model, version).resolve().as_uri()

    def version_sha256(self, model: str, version: int) -> str:
        """sha256 of a version's file-hash map (canonical JSON): one hash for the whole version."""
        files = self.get(model, version).files
        canonical = json.dumps(files, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def event(
        self,
        model: str,
        version: int,
        event: Literal["registered", "promoted", "rolled_back"],
        alias: str | None = None,
    ) -> RegistryEvent:
        """The ``registry.events`` message announcing a change to one version."""
        return RegistryEvent(
            model=model,
            version=version,
            event=event,
            alias=alias,
            uri=self.uri(model, version),
            sha256=self.version_sha256(model, version),
        )
