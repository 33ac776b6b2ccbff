"""The registry's storage layer: every read and write goes through one pyarrow filesystem.

A root is a local path, a ``file://`` URI, or any URI ``pyarrow.fs.FileSystem.from_uri``
understands (``s3://bucket/prefix``, ``gs://…``, ``mock:///…``); or pass a filesystem object
(e.g. a ``SubTreeFileSystem`` over a bucket prefix) and a path inside it. How immutable
versions are published on top of it is in :mod:`fti.models.registry.versions`.

Small mutable files (aliases, approvals, history) are replaced atomically on local-backed
filesystems (temp file + rename, under an ``flock`` on ``<model>/.lock``). Object stores have
neither rename nor locks: a replacement is a single PUT (atomic for readers) guarded by a
re-read just before it (*conditional-ish*); two writers within that window can still lose one
update. Use one writer per model there, or a store with conditional PUTs.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import posixpath
import random
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from pyarrow import fs as pafs

from fti.errors import RegistryError

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
_BLOCK = 1 << 20
_READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


def open_filesystem(
    root: str | os.PathLike[str], filesystem: pafs.FileSystem | None = None
) -> tuple[pafs.FileSystem, str, str | None]:
    """The filesystem, the base path inside it and the URI scheme (if any) of a registry root.

    >>> fs, base, scheme = open_filesystem("mock:///registry")
    >>> fs.type_name, base, scheme
    ('mock', 'registry', 'mock')
    >>> open_filesystem("/srv/registry")[1:]
    ('/srv/registry', None)
    """
    if filesystem is not None:
        return filesystem, str(root).rstrip("/") if str(root) != "/" else "/", None
    text = os.fspath(root)
    if "://" in text:
        try:
            filesystem, base = pafs.FileSystem.from_uri(text)
        except (ValueError, OSError) as ex:
            raise RegistryError(f"registry root {text!r} is not a usable URI: {ex}") from ex
        return filesystem, base.rstrip("/"), urlsplit(text).scheme
    return pafs.LocalFileSystem(), os.path.abspath(text), None


class RegistryStore:
    """Files of a registry on one pyarrow filesystem; see the module docstring for protocols."""

    def __init__(
        self, root: str | os.PathLike[str], filesystem: pafs.FileSystem | None = None
    ) -> None:
        self.fs, self.base, self._scheme = open_filesystem(root, filesystem)
        #: Versions are published by renaming a staging folder (else: claim and marker).
        self.atomic_rename = isinstance(self.fs, pafs.LocalFileSystem)
        #: Small files can be replaced by rename and locked with flock.
        self.local_backed = self.local_path(self.base) is not None

    def path(self, *parts: str) -> str:
        """A path inside the registry."""
        return posixpath.join(self.base, *parts)

    def local_path(self, path: str) -> Path | None:
        """The local file behind ``path``, or None for a remote filesystem."""
        if isinstance(self.fs, pafs.LocalFileSystem):
            return Path(path)
        if isinstance(self.fs, pafs.SubTreeFileSystem) and isinstance(
            self.fs.base_fs, pafs.LocalFileSystem
        ):
            return Path(self.fs.base_path) / path.lstrip("/")
        return None

    def uri(self, path: str) -> str:
        """A URI naming ``path``: ``file://…`` when local, else ``<scheme>://…``."""
        local = self.local_path(path)
        if local is not None:
            return local.resolve().as_uri()
        return f"{self._scheme or self.fs.type_name}://{path.lstrip('/')}"

    # -- reading ---------------------------------------------------------------------------

    def is_file(self, path: str) -> bool:
        """True if ``path`` is a file."""
        return self.fs.get_file_info(path).type == pafs.FileType.File

    def list_dir(self, path: str, recursive: bool = False) -> list[pafs.FileInfo]:
        """Entries under ``path`` (empty if it does not exist)."""
        return self.fs.get_file_info(
            pafs.FileSelector(path, allow_not_found=True, recursive=recursive)
        )

    def read_bytes(self, path: str) -> bytes | None:
        """The bytes of a file, or None if it does not exist."""
        try:
            with self.fs.open_input_stream(path, compression=None) as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def sha256(self, path: str) -> str:
        """Hex sha256 of a file, streamed through the filesystem."""
        digest = hashlib.sha256()
        with self.fs.open_input_stream(path, compression=None) as handle:
            for block in iter(lambda: handle.read(_BLOCK), b""):
                digest.update(block)
        return digest.hexdigest()

    def fetch(self, path: str, target: Path) -> str:
        """Download ``path`` to the local file ``target`` (atomically); return its sha256."""
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out, self.fs.open_input_stream(
                path, compression=None
            ) as handle:
                for block in iter(lambda: handle.read(_BLOCK), b""):
                    digest.update(block)
                    out.write(block)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return digest.hexdigest()

    # -- writing ---------------------------------------------------------------------------

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write a whole file (one PUT on object stores)."""
        self.fs.create_dir(posixpath.dirname(path), recursive=True)
        with self.fs.open_output_stream(path, compression=None) as out:
            out.write(data)

    def copy_in(self, source: Path, path: str) -> str:
        """Copy a local file into the registry; return the sha256 of the bytes written."""
        self.fs.create_dir(posixpath.dirname(path), recursive=True)
        digest = hashlib.sha256()
        with open(source, "rb") as src, self.fs.open_output_stream(path, compression=None) as out:
            for block in iter(lambda: src.read(_BLOCK), b""):
                digest.update(block)
                out.write(block)
        return digest.hexdigest()

    def replace_bytes(self, path: str, data: bytes) -> None:
        """Replace a small file so readers see the old or the new bytes, never a mix."""
        if not self.local_backed:
            self.write_bytes(path, data)  # one PUT: atomic for readers on object stores
            return
        folder, name = posixpath.split(path)
        temp = posixpath.join(folder, f".tmp-{uuid.uuid4().hex}-{name}")
        self.write_bytes(temp, data)
        try:
            self.fs.move(temp, path)
        except BaseException:
            self.fs.delete_file(temp)
            raise

    def update(self, path: str, change: Callable[[bytes | None], bytes]) -> None:
        """Read-modify-write a small file; hold :meth:`lock` around it.

        Object stores: the file is re-read just before the write and the change retried if
        it moved; this narrows, but does not close, the window for a lost update.
        """
        for _attempt in range(5):
            before = self.read_bytes(path)
            after = change(before)
            if not self.local_backed and self.read_bytes(path) != before:
                time.sleep(random.uniform(0.01, 0.05))
                continue
            self.replace_bytes(path, after)
            return
        raise RegistryError(f"{path} kept changing under concurrent writers; try again")

    def append_line(self, path: str, line: str) -> None:
        """Append one line (newline added) to a JSON-lines file; hold :meth:`lock` around it."""
        data = (line.rstrip("\n") + "\n").encode()
        if self.local_backed:
            self.fs.create_dir(posixpath.dirname(path), recursive=True)
            with self.fs.open_append_stream(path, compression=None) as out:
                out.write(data)
            return
        self.update(path, lambda before: (before or b"") + data)

    @contextmanager
    def lock(self, folder: str) -> Iterator[None]:
        """Exclusive lock of a model folder for read-modify-write (a no-op on object stores)."""
        local = self.local_path(folder)
        if local is None:
            yield
            return
        local.mkdir(parents=True, exist_ok=True)
        with open(local / LOCK_FILE, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def seal(self, path: str) -> None:
        """Make a local file read-only (object stores: nothing to do)."""
        local = self.local_path(path)
        if local is not None:
            os.chmod(local, _READ_ONLY)
