"""Load a user project: import its `definitions.py` (or `definitions/` package) and collect
every stream, feature group, label, feature view and model it declares.

Each load imports the definitions afresh under a module name of its own, without bytecode
caches, so two projects can live in one process and a reload sees every edit. Modules beside
the definitions (importable while they load, as in a script) are forgotten afterwards, so the
next load, of this project or another with a module of the same name, reads its own.

>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "definitions.py").write_text('''
... from fti.features.project import Field, Stream
... clicks = Stream("clicks", topic="clicks", event_time="ts",
...                 fields=[Field("user"), Field("ts", "timestamp")])
... ''')
>>> sorted(load_project(folder).streams)
['clicks']
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import itertools
import sys
import threading
import traceback
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from fti.features.errors import DefinitionError
from fti.features.project.declare import FeatureGroup, FeatureView, Label
from fti.features.project.fields import Stream
from fti.features.project.model import Model

__all__ = ["DEFINITIONS", "SETTINGS_FILE", "Project", "definitions_path", "load_project"]

DEFINITIONS = "definitions"
SETTINGS_FILE = "fti.yaml"
#: Attribute of `Project` holding each kind, and the word for one of it in messages.
_KINDS: dict[type, tuple[str, str]] = {
    Stream: ("streams", "stream"), FeatureGroup: ("groups", "group"),
    Label: ("labels", "label"), FeatureView: ("views", "view"), Model: ("models", "model"),
}
Definition = Stream | FeatureGroup | Label | FeatureView | Model
_loads = itertools.count(1)
#: Loading changes sys.path and sys.meta_path for its duration: one load at a time.
_IMPORT_LOCK = threading.RLock()


@dataclass(frozen=True)
class Project:
    """A loaded project: its directory and its definitions of each kind, by name.

    `module` is the name its definitions were imported under (unique to this load).
    """

    directory: Path
    streams: dict[str, Stream] = field(default_factory=dict)
    groups: dict[str, FeatureGroup] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)
    views: dict[str, FeatureView] = field(default_factory=dict)
    models: dict[str, Model] = field(default_factory=dict)
    module: str = ""

    def topics(self) -> list[str]:
        """Every topic the project's streams read or dead-letter to, sorted."""
        return sorted({t for s in self.streams.values() for t in (s.topic, s.dlq_topic) if t})

    @property
    def settings_file(self) -> Path | None:
        """The project's `fti.yaml`, or None when it has none."""
        path = self.directory / SETTINGS_FILE
        return path if path.is_file() else None


def definitions_path(directory: Path | str) -> Path:
    """The file to import: `definitions.py`, or `definitions/__init__.py` of a package.

    >>> definitions_path("/nonexistent")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fti.features.errors.DefinitionError: no definitions in /nonexistent: ... `fti init ...
    """
    folder = Path(directory)
    single, package = folder / f"{DEFINITIONS}.py", folder / DEFINITIONS / "__init__.py"
    if single.is_file() and package.is_file():
        raise DefinitionError(f"{folder} has both {single.name} and {package.parent.name}/: "
                              "keep one of them")
    if single.is_file():
        return single
    if package.is_file():
        return package
    raise DefinitionError(f"no definitions in {folder}: neither {single.name} nor a "
                          f"{DEFINITIONS}/ package; run `fti init {folder}` to start a project")


def load_project(directory: Path | str) -> Project:
    """Import the project in `directory` and collect its definitions.

    Raises `DefinitionError` when there is nothing to import, when importing fails (the
    message names the file and line and the original error), or when two definitions of one
    kind share a name but differ (one object found twice, or two equal copies, is fine).
    """
    folder = Path(directory).resolve()
    entry = definitions_path(folder)
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:8]
    name = f"_fti_project_{digest}_{next(_loads)}"
    modules = _import_definitions(folder, entry, name)
    return Project(folder, **_collect(modules, folder), module=name)


class _FreshLoader(importlib.machinery.SourceFileLoader):
    """Reads the source every time: `.pyc` files keep the source's mtime in whole seconds, so
    an edit that keeps the size (`version=1` -> `version=2`) within a second would be missed."""

    def path_stats(self, path: str) -> dict[str, Any]:
        raise OSError("bytecode caches are not used for project definitions")


class _ProjectFinder(importlib.abc.MetaPathFinder):
    """Finds modules in the project directory (its top level and packages in it) and loads
    them with `_FreshLoader`; anything else is left to the usual finders."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def find_spec(self, fullname: str, path: list[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        search = [str(self.directory)] if path is None else list(path)
        found = importlib.machinery.PathFinder.find_spec(fullname, search)
        origin = found.origin if found is not None else None
        if found is None or origin is None or not origin.endswith(".py"):
            return None
        if not _inside(origin, self.directory):
            return None
        return importlib.util.spec_from_file_location(
            fullname, origin, loader=_FreshLoader(fullname, origin),
            submodule_search_locations=found.submodule_search_locations)


def _import_definitions(folder: Path, entry: Path, name: str) -> list[ModuleType]:
    """The definitions module and, for a package, every module in it, imported fresh."""
    with _IMPORT_LOCK:
        return _import_locked(folder, entry, name)


def _import_locked(folder: Path, entry: Path, name: str) -> list[ModuleType]:
    before = set(sys.modules)
    finder = _ProjectFinder(folder)
    sys.meta_path.insert(0, finder)
    sys.path.insert(0, str(folder))
    try:
        is_package = entry.name == "__init__.py"
        spec = importlib.util.spec_from_file_location(
            name, entry, loader=_FreshLoader(name, str(entry)),
            submodule_search_locations=[str(entry.parent)] if is_package else None)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
            modules = [module]
            if is_package:
                modules += [importlib.import_module(n) for n in _submodules(entry.parent, name)]
        except Exception as ex:
            for loaded in [n for n in sys.modules if n == name or n.startswith(f"{name}.")]:
                del sys.modules[loaded]
            raise _load_error(ex, folder, entry) from None
    finally:
        sys.meta_path.remove(finder)
        sys.path.remove(str(folder))
        _forget_siblings(before, folder, name)
    return modules


def _submodules(package: Path, name: str) -> list[str]:
    """Import names of the modules in a package folder, subpackages included, sorted."""
    names = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).with_suffix("").parts
        folders = [package.joinpath(*parts[:i]) for i in range(1, len(parts))]
        if "__pycache__" in parts or not all((f / "__init__.py").is_file() for f in folders):
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            names.append(".".join((name, *parts)))
    return names


def _forget_siblings(before: set[str], folder: Path, name: str) -> None:
    """Drop modules that loading imported from the project folder under ordinary names."""
    for loaded in set(sys.modules) - before:
        if loaded == name or loaded.startswith(f"{name}."):
            continue
        origin = getattr(sys.modules[loaded], "__file__", None)
        if origin is not None and _inside(origin, folder):
            del sys.modules[loaded]


def _inside(path: str | Path, folder: Path) -> bool:
    if str(path).startswith("<"):  # generated code, such as a dataclass's __init__
        return False
    try:
        return Path(path).resolve().is_relative_to(folder)
    except (OSError, ValueError):
        return False


def _load_error(ex: Exception, folder: Path, entry: Path) -> DefinitionError:
    """One line: the file and line in the project where it failed, and the error."""
    if isinstance(ex, SyntaxError) and ex.filename:
        file, line, text = ex.filename, ex.lineno, f"SyntaxError: {ex.msg}"
    else:
        frames = [f for f in traceback.extract_tb(ex.__traceback__) if _inside(f.filename, folder)]
        file, line = (frames[-1].filename, frames[-1].lineno) if frames else (str(entry), None)
        text = str(ex) if isinstance(ex, DefinitionError) else f"{type(ex).__name__}: {ex}"
    where = f"{file}:{line}" if line else file
    return DefinitionError(" ".join(f"{where}: {text}".split()))


def _candidates(module: ModuleType, folder: Path) -> Iterator[tuple[Any, str]]:
    """Values of a module's globals (and of lists, tuples and dicts there), each with a
    description of where it was found."""
    file = Path(module.__file__ or module.__name__)
    shown = file.relative_to(folder) if _inside(file, folder) else file
    for key, value in vars(module).items():
        if key.startswith("__"):
            continue
        yield value, f"{shown} ({key})"
        if isinstance(value, list | tuple):
            yield from ((item, f"{shown} ({key}[{i}])") for i, item in enumerate(value))
        elif isinstance(value, dict):
            yield from ((item, f"{shown} ({key}[{k!r}])") for k, item in value.items())


def _references(obj: Definition) -> list[Definition]:
    """The definitions an object is built from."""
    if isinstance(obj, Model):
        return [obj.view]
    if isinstance(obj, FeatureView):
        return [obj.label, *obj.groups]
    if isinstance(obj, FeatureGroup | Label):
        return [obj.stream]
    return []


def _collect(modules: list[ModuleType], folder: Path) -> dict[str, dict[str, Any]]:
    """Definitions by kind and name, with those they reference; a name given to two
    different definitions of one kind is an error naming where each was found."""
    found: dict[str, dict[str, tuple[Definition, str]]] = {k: {} for k, _ in _KINDS.values()}
    pending = deque(c for m in modules for c in _candidates(m, folder))
    while pending:
        obj, where = pending.popleft()
        kind = next((k for cls, k in _KINDS.items() if isinstance(obj, cls)), None)
        if kind is None:
            continue
        attr, word = kind
        seen = found[attr].get(obj.name)
        if seen is None:
            found[attr][obj.name] = (obj, where)
            pending.extend((r, f"referenced by {word} {obj.name}") for r in _references(obj))
        elif seen[0] is not obj and seen[0].spec() != obj.spec():
            raise DefinitionError(
                f"two different {attr} named {obj.name}: one in {seen[1]}, another in {where}; "
                f"rename one, or define it once and import it where it is needed")
    return {attr: {n: found[attr][n][0] for n in sorted(found[attr])} for attr in found}
