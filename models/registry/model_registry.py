"""The model registry: immutable versions, aliases, approvals and a promotion history.

Layout, on any pyarrow filesystem (see :mod:`fti.models.registry.store`)::

    root/<model>/<version>/      artifacts + metadata.json + _COMPLETE, never changed once written
    root/<model>/aliases.json    {"champion": 3, "challenger": 4}, replaced atomically
    root/<model>/approvals.json  {"3": {"status": "approved", "by": …, "at": …, "reason": …}}
    root/<model>/history.jsonl   append-only: who moved which alias / approved what, when, why

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> source = root / "src"
>>> source.mkdir()
>>> _ = (source / "model.ubj").write_bytes(b"weights")
>>> registry = ModelRegistry(root / "registry")
>>> v = registry.register("risk-xgb", source, gates={"passed": True, "reasons": []}, card=None)
>>> v.version, v.files["model.ubj"][:12]
(1, '9a129038d9a0')
>>> _ = registry.set_alias("risk-xgb", "champion", 1)
>>> registry.alias("risk-xgb")
1
>>> [(e.action, e.to_version) for e in registry.history("risk-xgb")]
[('promoted', 1)]
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import tempfile
from datetime import UTC, datetime
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

from pyarrow import fs as pafs

from fti.errors import RegistryError
from fti.events import RegistryEvent
from fti.models.errors import VersionExistsError
from fti.models.registry.diff import VersionDiff, diff_versions
from fti.models.registry.history import (
    CHAMPION,
    HistoryEntry,
    event_kind,
    previous_version,
)
from fti.models.registry.metadata import (
    METADATA_FILE,
    Approval,
    GateRecord,
    Lineage,
    ModelVersion,
    Signature,
    check_name,
    check_version,
    detect_code_version,
    gate_record,
    promotion_problems,
    sha256_file,
)
from fti.models.registry.state import ModelState
from fti.models.registry.store import RegistryStore
from fti.models.registry.versions import VersionFolders, artifact_sources

#: Folder of a version holding its report (plots drawn after registration), and its manifest.
REPORT_DIR = "report"
REPORT_MANIFEST = "report.json"

class ModelRegistry:
    """Registered model versions under ``root``; see the module docstring for the layout.

    ``root`` is a local path or a URI (``file://``, ``s3://bucket/prefix``, …); or pass a
    pyarrow ``filesystem`` and a path inside it. Artifacts of remote registries are
    downloaded, sha256-checked, to ``cache_dir`` when a local path is needed.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        filesystem: pafs.FileSystem | None = None,
        *,
        cache_dir: Path | None = None,
    ) -> None:
        self._store = RegistryStore(root, filesystem)
        local = self._store.local_path(self._store.base)
        #: The registry's local directory (as given), or its path inside a remote filesystem.
        self.root: PurePath = (
            Path(root) if filesystem is None and "://" not in os.fspath(root)
            else local if local is not None else PurePosixPath(self._store.base)
        )
        key = hashlib.sha256(self._store.uri(self._store.base).encode()).hexdigest()[:16]
        self.cache_dir = cache_dir or Path(tempfile.gettempdir()) / "fti-registry-cache" / key

    @property
    def filesystem(self) -> pafs.FileSystem:
        """The pyarrow filesystem every read and write goes through."""
        return self._store.fs

    def _model_dir(self, model: str) -> str:
        return self._store.path(check_name("model", model))

    def _folders(self, model: str) -> VersionFolders:
        return VersionFolders(self._store, self._model_dir(model))

    def _version_dir(self, model: str, version: int) -> str:
        return posixpath.join(self._model_dir(model), str(check_version(version)))

    def model_names(self) -> list[str]:
        """Models with a folder in the registry, sorted (empty for a new registry)."""
        entries = self._store.list_dir(self._store.base)
        return sorted(e.base_name for e in entries
                      if e.type == pafs.FileType.Directory and not e.base_name.startswith("."))

    # -- versions --------------------------------------------------------------------------

    def version_numbers(self, model: str) -> list[int]:
        """Published version numbers of ``model``, ascending (empty if none)."""
        return self._folders(model).numbers()

    def next_version(self, model: str) -> int:
        """The version number the next ``register`` call will get (if nobody registers first)."""
        return self._folders(model).next_number()

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
        signature: Signature | dict[str, Any] | None = None,
        lineage: Lineage | dict[str, Any] | None = None,
        code_version: str | None = None,
        device: str | None = None,
    ) -> ModelVersion:
        """Copy the files of ``source_dir`` into a new immutable version and return its metadata.

        The version is the highest existing one + 1, safe against concurrent registrations
        (each gets its own number); pass ``version`` to insist on a number (e.g. one already
        written into the model card) and fail if it is taken. ``code_version`` defaults to
        the git commit of this code (else the package version). New versions are "pending"
        approval.
        """
        model_dir = self._model_dir(model)
        self._store.fs.create_dir(model_dir, recursive=True)
        sources = artifact_sources(Path(source_dir))
        if card is not None and card not in sources:
            raise RegistryError(f"model card {card!r} is not among the files {sorted(sources)}")
        fields: dict[str, Any] = dict(
            model=model, created_at=datetime.now(UTC), metrics=metrics or {},
            params=params or {}, dataset=dataset or {}, gates=gate_record(gates),
            champion_metrics_on_same_test=champion_metrics_on_same_test,
            champion_version=champion_version, promoted=promoted, card=card, reason=reason,
            signature=signature, lineage=lineage, device=device,
            code_version=code_version or detect_code_version(),
        )

        def metadata_for(number: int, files: dict[str, str]) -> bytes:
            return ModelVersion(version=number, files=files, **fields).model_dump_json(
                indent=2).encode()

        wanted = None if version is None else check_version(version)
        try:
            number, files = self._folders(model).publish(sources, metadata_for, wanted)
        except VersionExistsError as ex:
            raise RegistryError(f"{model} version {version} already exists") from ex
        return ModelVersion(version=number, files=files, **fields)

    def versions(self, model: str) -> list[ModelVersion]:
        """Metadata of every version of ``model``, oldest first."""
        approvals = self._state(model).approvals()
        return [self._read(model, n, approvals) for n in self.version_numbers(model)]

    def get(self, model: str, version: int) -> ModelVersion:
        """Metadata of one version (with its current approval); RegistryError if not found."""
        return self._read(model, version, self._state(model).approvals())

    def _read(self, model: str, version: int, approvals: dict[str, Approval]) -> ModelVersion:
        version_dir = self._version_dir(model, version)
        raw = None
        if self._folders(model).is_published(version):
            raw = self._store.read_bytes(posixpath.join(version_dir, METADATA_FILE))
        if raw is None:
            raise RegistryError(
                f"{model} version {version} not found (have {self.version_numbers(model)})"
            )
        metadata = ModelVersion.model_validate_json(raw)
        current = approvals.get(str(version))
        return metadata if current is None else metadata.model_copy(update={"approval": current})

    def resolve(self, model: str, ref: int | str) -> int:
        """A version number from a number, a numeric string or an alias name.

        Raises RegistryError naming the aliases that exist when ``ref`` is none of them.
        """
        if isinstance(ref, int) and not isinstance(ref, bool):
            return check_version(ref)
        if isinstance(ref, str) and ref.isdecimal():
            return check_version(int(ref))
        aliases = self.aliases(model)
        version = aliases.get(check_name("alias", ref))
        if version is None:
            raise RegistryError(f"{model} has no alias {ref!r} (aliases: {aliases or 'none'})")
        return version

    # -- aliases, approvals, history -------------------------------------------------------

    def _state(self, model: str) -> ModelState:
        return ModelState(self._store, check_name("model", model))

    def aliases(self, model: str) -> dict[str, int]:
        """Every alias of ``model`` and the version it points to."""
        return self._state(model).aliases()

    def alias(self, model: str, name: str = CHAMPION) -> int | None:
        """The version an alias points to, or None if it is not set."""
        return self.aliases(model).get(check_name("alias", name))

    def history(self, model: str) -> list[HistoryEntry]:
        """Every recorded change of ``model``'s aliases and approvals, oldest first."""
        return self._state(model).history()

    def set_alias(
        self,
        model: str,
        name: str,
        version: int,
        *,
        reason: str | None = None,
        actor: str | None = None,
        forced: bool = False,
    ) -> HistoryEntry:
        """Point alias ``name`` at an existing version, atomically, and record it in history.

        No checks beyond existence: :meth:`promote` is the gated way in.
        """
        check_name("alias", name)
        self.get(model, version)
        return self._state(model).set_alias(name, version, reason=reason, actor=actor,
                                            forced=forced)

    def promote(
        self,
        model: str,
        version: int,
        *,
        alias: str = CHAMPION,
        reason: str | None = None,
        force: bool = False,
        actor: str | None = None,
    ) -> HistoryEntry:
        """Point ``alias`` (champion or challenger) at ``version`` if it may be promoted.

        Refuses a version whose gates failed or whose approval is "rejected", unless
        ``force`` is set with a ``reason`` (both are recorded in the history).
        """
        problems = promotion_problems(self.get(model, version))
        if problems and not force:
            raise RegistryError(
                f"{model} version {version} cannot become {alias}: {'; '.join(problems)}; "
                "promote a passing version, or force it with a reason"
            )
        if force and not (reason and reason.strip()):
            raise RegistryError("a forced promotion needs a reason; it goes into the history")
        return self.set_alias(model, alias, version, reason=reason, actor=actor,
                              forced=force and bool(problems))

    def rollback(
        self, model: str, reason: str | None = None, *, alias: str = CHAMPION,
        actor: str | None = None,
    ) -> int:
        """Point ``alias`` back at the version it had before the current one; return it.

        The previous version comes from the promotion history (rejected versions skipped);
        a registry without history falls back to the newest promoted version older than
        the current one.
        """
        state = self._state(model)
        current = state.aliases().get(check_name("alias", alias))
        if current is None:
            raise RegistryError(f"{model} has no {alias} to roll back from")
        rejected = state.rejected()
        try:
            target = previous_version(state.history(), alias, current, rejected)
        except RegistryError as ex:
            raise RegistryError(f"{model} has {ex}") from None
        if target is None:
            earlier = [v.version for v in self.versions(model)
                       if v.promoted and v.version < current and v.version not in rejected]
            if not earlier:
                raise RegistryError(
                    f"{model} has no promoted version before {alias} {current}; "
                    "nothing to roll back to"
                )
            target = earlier[-1]
        state.set_alias(alias, target, action="rolled_back", reason=reason, actor=actor)
        return target

    def approve(
        self, model: str, version: int, reason: str | None = None, *, actor: str | None = None
    ) -> HistoryEntry:
        """Mark a version approved by ``actor`` (default ``$USER``), with an optional reason."""
        self.get(model, version)
        return self._state(model).decide(version, "approved", reason, actor)

    def reject(
        self, model: str, version: int, reason: str, *, actor: str | None = None
    ) -> HistoryEntry:
        """Mark a version rejected; it cannot be promoted (without force) or rolled back to."""
        if not (reason and reason.strip()):
            raise RegistryError("rejecting a version needs a reason")
        self.get(model, version)
        return self._state(model).decide(version, "rejected", reason, actor)

    def approval(self, model: str, version: int) -> Approval:
        """The current approval of a version ("pending" until someone decides)."""
        return self.get(model, version).approval

    def diff(self, model: str, a: int | str, b: int | str) -> VersionDiff:
        """What changed from version (or alias) ``a`` to ``b``."""
        return diff_versions(self.get(model, self.resolve(model, a)),
                             self.get(model, self.resolve(model, b)))

    # -- reports -----------------------------------------------------------------------------

    def attach_report(self, model: str, version: int, source_dir: Path) -> dict[str, str]:
        """Add the files of ``source_dir`` (plots drawn after registration) to the version's
        ``report/`` folder and return them with their sha256.

        A report is not part of the version's artifacts (`files`, `version_sha256`): the
        version is servable as soon as it is registered, and its report follows. The report's
        own hashes are in ``report/report.json``, written last, so a report without it is
        incomplete; attaching again replaces it.
        """
        self.get(model, version)  # the version must exist
        sources = artifact_sources(Path(source_dir))
        folder = posixpath.join(self._version_dir(model, version), REPORT_DIR)
        files = {name: self._store.copy_in(path, posixpath.join(folder, name))
                 for name, path in sources.items() if name != REPORT_MANIFEST}
        self._store.replace_bytes(posixpath.join(folder, REPORT_MANIFEST),
                                  json.dumps(files, indent=2, sort_keys=True).encode())
        return files

    def report_files(self, model: str, version: int) -> dict[str, str]:
        """The version's report files with their sha256 (empty until a report is attached)."""
        raw = self._store.read_bytes(
            posixpath.join(self._version_dir(model, version), REPORT_DIR, REPORT_MANIFEST))
        return {} if raw is None else dict(json.loads(raw))

    # -- artifacts and events --------------------------------------------------------------

    def artifact_path(self, model: str, version: int, file: str) -> Path:
        """A local path of an artifact file after checking its sha256 against the metadata.

        Local registries return the stored file; remote ones a verified copy in the cache.
        """
        metadata = self.get(model, version)
        expected = metadata.files.get(check_name("file", file))
        if expected is None:
            raise RegistryError(f"{model} version {version} has no file {file!r}")
        path = posixpath.join(self._version_dir(model, version), file)
        if not self._store.is_file(path):
            raise RegistryError(f"{model} version {version}: file {file!r} is missing at {path}")
        local = self._store.local_path(path)
        if local is not None:
            actual = self._store.sha256(path)
        else:
            local = self.cache_dir / model / str(version) / file
            cached = local.is_file() and sha256_file(local) == expected
            actual = expected if cached else self._store.fetch(path, local)
        if actual != expected:
            if self._store.local_path(path) is None:
                local.unlink(missing_ok=True)  # never leave a bad copy in the cache
            raise RegistryError(
                f"{model} version {version}: {file} sha256 mismatch, expected {expected}, "
                f"actual {actual}; the artifact was modified or corrupted, do not load it"
            )
        return local

    def read_artifact(self, model: str, version: int, file: str) -> bytes:
        """The bytes of an artifact file, sha256-checked (remote files via the cache)."""
        return self.artifact_path(model, version, file).read_bytes()

    def uri(self, model: str, version: int) -> str:
        """URI of a version directory (``file://…`` locally, ``s3://…`` on S3)."""
        return self._store.uri(self._version_dir(model, version))

    def version_sha256(self, model: str, version: int) -> str:
        """sha256 of a version's file-hash map (canonical JSON): one hash for the whole version."""
        files = self.get(model, version).files
        canonical = json.dumps(files, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def event(
        self, model: str, version: int, event: str, alias: str | None = None
    ) -> RegistryEvent:
        """The ``registry.events`` message announcing a change to one version."""
        return RegistryEvent(
            model=model,
            version=version,
            event=event,  # type: ignore[arg-type]  # validated by the schema
            alias=alias,
            uri=self.uri(model, version),
            sha256=self.version_sha256(model, version),
        )

    def event_for(self, model: str, entry: HistoryEntry) -> RegistryEvent | None:
        """The event announcing a history entry, or None if the event schema has no kind
        for it yet (see :func:`fti.models.registry.history.event_kind`)."""
        kind = event_kind(entry.action)
        return None if kind is None else self.event(model, entry.to_version, kind, entry.alias)
