"""Immutable version folders: how a registry publishes ``<model>/<n>/`` exactly once.

Two protocols, chosen by the filesystem (see :class:`fti.models.registry.store.RegistryStore`):

* **rename** (a plain ``LocalFileSystem``): files are written to ``<model>/.staging-<uuid>/``
  and the folder is renamed to ``<model>/<n>/``. The rename is atomic and fails when another
  writer took ``n`` first, so the loser retries with ``n + 1``. A version is visible once its
  folder holds ``metadata.json`` (registries written before ``_COMPLETE`` existed included).
* **claim and marker** (object stores, and any other filesystem): a writer claims ``n`` by
  writing ``<n>/.claim-<uuid>`` and listing ``<n>/``; it owns ``n`` only if its claim is
  the only file there. With read-after-write consistent listing (S3, GCS, Azure today) two
  writers can never both own a number: whoever listed first did not see the other's claim, so
  the other's later listing sees the first one's. Losers delete their claim and retry. The
  owner writes ``.owner``, the artifacts, ``metadata.json`` and, last, ``_COMPLETE``; a
  version without ``_COMPLETE`` is invisible. A writer that dies mid-way leaves an invisible
  folder whose number is skipped.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import posixpath
import random
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pyarrow import fs as pafs

from fti.errors import RegistryError
from fti.models.errors import VersionExistsError
from fti.models.registry.metadata import METADATA_FILE, check_name
from fti.models.registry.store import RegistryStore

log = logging.getLogger(__name__)

COMPLETE_MARKER = "_COMPLETE"
OWNER_MARKER = ".owner"
CLAIM_PREFIX = ".claim-"
STAGING_PREFIX = ".staging-"
_CONTENDED_ROUNDS = 8
_TAKEN_ERRNOS = (errno.EEXIST, errno.ENOTEMPTY)
_NUMBER = re.compile(r"[1-9][0-9]*")

MetadataFor = Callable[[int, dict[str, str]], bytes]
ClaimOutcome = Literal["won", "taken", "contended"]


class VersionFolders:
    """The version folders of one model folder ``model_dir`` in ``store``."""

    def __init__(self, store: RegistryStore, model_dir: str) -> None:
        self.store, self.model_dir = store, model_dir
        self._marker = METADATA_FILE if store.atomic_rename else COMPLETE_MARKER

    def _folder(self, number: int) -> str:
        return posixpath.join(self.model_dir, str(number))

    def numbers(self) -> list[int]:
        """Published versions, ascending; unfinished ones are invisible."""
        numbers = self._number_dirs()
        paths = [posixpath.join(self._folder(n), self._marker) for n in numbers]
        done = [info.type == pafs.FileType.File for info in self.store.fs.get_file_info(paths)]
        return [n for n, ok in zip(numbers, done, strict=True) if ok]

    def is_published(self, number: int) -> bool:
        """True if version ``number`` is published (visible)."""
        return self.store.is_file(posixpath.join(self._folder(number), self._marker))

    def next_number(self) -> int:
        """The lowest version number above every taken one."""
        if self.store.atomic_rename:
            return max(self._number_dirs(), default=0) + 1
        owned: set[int] = set()
        for info in self.store.list_dir(self.model_dir, recursive=True):
            parts = posixpath.relpath(info.path, self.model_dir).split("/")
            if len(parts) == 2 and _NUMBER.fullmatch(parts[0]):
                if not parts[1].startswith(CLAIM_PREFIX):
                    owned.add(int(parts[0]))
        return max(owned, default=0) + 1

    def _number_dirs(self) -> list[int]:
        return sorted(
            int(info.base_name)
            for info in self.store.list_dir(self.model_dir)
            if info.type == pafs.FileType.Directory and _NUMBER.fullmatch(info.base_name)
        )

    def publish(
        self, sources: dict[str, Path], metadata_for: MetadataFor, version: int | None = None
    ) -> tuple[int, dict[str, str]]:
        """Store ``sources`` as a new immutable version; return its number and file hashes.

        ``metadata_for(number, files)`` gives the ``metadata.json`` bytes. With ``version``
        set, that number or VersionExistsError.
        """
        if self.store.atomic_rename:
            return self._publish_by_rename(sources, metadata_for, version)
        return self._publish_by_claim(sources, metadata_for, version)

    def _publish_by_rename(
        self, sources: dict[str, Path], metadata_for: MetadataFor, version: int | None
    ) -> tuple[int, dict[str, str]]:
        store = self.store
        staging = posixpath.join(self.model_dir, f"{STAGING_PREFIX}{uuid.uuid4().hex}")
        try:
            files = {name: store.copy_in(src, posixpath.join(staging, name))
                     for name, src in sources.items()}
            for name in files:
                store.seal(posixpath.join(staging, name))
            for _attempt in range(1000):
                number = self.next_number() if version is None else version
                metadata = metadata_for(number, files)
                store.write_bytes(posixpath.join(staging, METADATA_FILE), metadata)
                store.write_bytes(posixpath.join(staging, COMPLETE_MARKER), _marker(metadata))
                if self._rename_if_free(staging, self._folder(number)):
                    for name in (METADATA_FILE, COMPLETE_MARKER):
                        store.seal(posixpath.join(self._folder(number), name))
                    return number, files
                if version is not None:
                    raise VersionExistsError(f"version {version} already exists")
            raise RegistryError(f"could not find a free version number in {self.model_dir}")
        finally:
            if store.fs.get_file_info(staging).type != pafs.FileType.NotFound:
                store.fs.delete_dir(staging)

    def _rename_if_free(self, staging: str, target: str) -> bool:
        try:
            if self.store.fs.get_file_info(target).type != pafs.FileType.NotFound:
                return False
            self.store.fs.move(staging, target)  # atomic; fails if another writer made target
            return True
        except OSError as ex:
            if isinstance(ex, FileExistsError) or ex.errno in _TAKEN_ERRNOS:
                return False
            raise

    def _publish_by_claim(
        self, sources: dict[str, Path], metadata_for: MetadataFor, version: int | None
    ) -> tuple[int, dict[str, str]]:
        store = self.store
        number = self._claim_number(version)
        target = self._folder(number)
        try:
            files = {name: store.copy_in(src, posixpath.join(target, name))
                     for name, src in sources.items()}
            metadata = metadata_for(number, files)
            store.write_bytes(posixpath.join(target, METADATA_FILE), metadata)
            # Last: the marker makes the version visible.
            store.write_bytes(posixpath.join(target, COMPLETE_MARKER), _marker(metadata))
        except BaseException:
            self._abandon(target)
            raise
        for name in (*files, METADATA_FILE, COMPLETE_MARKER):
            store.seal(posixpath.join(target, name))
        return number, files

    def _claim_number(self, version: int | None) -> int:
        number = self.next_number() if version is None else version
        contended = 0
        for _attempt in range(1000):
            outcome = self._claim(self._folder(number))
            if outcome == "won":
                return number
            if outcome == "taken":
                if version is not None:
                    raise VersionExistsError(f"version {version} already exists")
                number, contended = max(number + 1, self.next_number()), 0
                continue
            contended += 1
            if contended >= _CONTENDED_ROUNDS:  # a claim left by a crashed writer: skip it
                if version is not None:
                    raise RegistryError(f"version {version} of {self.model_dir} stays contended")
                number, contended = number + 1, 0
            time.sleep(random.uniform(0.002, 0.02) * contended)
        raise RegistryError(f"could not claim a version number in {self.model_dir}")

    def _claim(self, folder: str) -> ClaimOutcome:
        mine = f"{CLAIM_PREFIX}{uuid.uuid4().hex}"
        self.store.write_bytes(posixpath.join(folder, mine), b"")
        names = [info.base_name for info in self.store.list_dir(folder)]
        if names == [mine]:
            self.store.write_bytes(posixpath.join(folder, OWNER_MARKER), mine.encode())
            return "won"
        self.store.fs.delete_file(posixpath.join(folder, mine))
        if any(not name.startswith(CLAIM_PREFIX) for name in names):
            return "taken"
        return "contended"

    def _abandon(self, folder: str) -> None:
        try:
            self.store.fs.delete_dir(folder)
        except OSError as ex:  # the folder stays invisible (no _COMPLETE); its number is skipped
            log.warning("could not remove the unfinished version %s: %s", folder, ex)


def artifact_sources(source_dir: Path) -> dict[str, Path]:
    """The files of ``source_dir`` to register, by name; RegistryError if any is unfit.

    Artifacts are plain files with safe names (no symlinks, folders or ``metadata.json``).
    """
    if not source_dir.is_dir():
        raise RegistryError(f"source directory {source_dir} does not exist")
    sources: dict[str, Path] = {}
    for path in sorted(source_dir.iterdir()):
        name = check_name("file", path.name)
        if name == METADATA_FILE or not path.is_file() or path.is_symlink():
            raise RegistryError(
                f"{path} cannot be registered: artifacts are plain files, not {METADATA_FILE}"
            )
        sources[name] = path
    if not sources:
        raise RegistryError(f"source directory {source_dir} holds no artifact files")
    return sources


def _marker(metadata: bytes) -> bytes:
    return f'{{"metadata_sha256": "{hashlib.sha256(metadata).hexdigest()}"}}\n'.encode()
