"""The package layout: one `fti` namespace, every folder shipped, no import cycles."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from setup import FOLDERS, packages  # noqa: E402

sys.path.remove(str(ROOT))


def _modules() -> dict[str, Path]:
    """Import name → file, for every module of the mapped folders."""
    found: dict[str, Path] = {}
    for name, folder in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((name, *parts))] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """fti modules `name` imports anywhere in its file (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_between_modules() -> None:
    modules = _modules()
    # A package's __init__ re-exporting its own modules is not a cycle of logic.
    graph = {
        name: {t for t in _imports(name, path, set(modules))
               if not (path.name == "__init__.py" and t.startswith(f"{name}."))
               and not (name.startswith(f"{t}.") and modules[t].name == "__init__.py")}
        for name, path in modules.items()
    }
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_folder_with_an_init_ships_as_a_package() -> None:
    shipped = set(packages())
    for name, folder in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            assert ".".join((name, *parts)) in shipped


@pytest.mark.parametrize("bare", ["models", "flows", "features", "connectors", "infra", "bench"])
def test_bare_folder_names_are_not_importable_outside_the_repository(
    bare: str, tmp_path: Path
) -> None:
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({bare!r}) is not None)"
    assert subprocess.run([sys.executable, "-c", code], cwd=tmp_path, timeout=60).returncode == 0
    assert importlib.util.find_spec(f"fti.{bare}") is not None
