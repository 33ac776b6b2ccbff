"""A project's demo scenario: the synthetic stream `fti demo` produces for it.

A project that wants a demo ships `scenario.py` beside its definitions with a function
`generate(count, drift_at, bad_fraction, seed)` yielding `DemoRecord`s in the order to
produce them (events of the scored stream, label events of the label stream, each naming its
stream), and optionally `index_of(event_id)`, the position of an event in the stream (so the
demo can say at which event drift was detected).

>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "scenario.py").write_text('''
... from fti.ops.scenario import DemoRecord
... def generate(count, drift_at, bad_fraction, seed):
...     for i in range(count):
...         yield DemoRecord("clicks", None, b"{}", index=i, drifted=i >= drift_at)
... ''')
>>> [r.drifted for r in load_scenario(folder).generate(3, 2, 0.0, 7)]
[False, False, True]
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from fti.errors import ConfigError

SCENARIO_FILE = "scenario.py"
_loads = itertools.count(1)


@dataclass(frozen=True)
class DemoRecord:
    """One record to produce: to the topic of stream `stream`, with `key` and `value` bytes.

    `index` is the position of the event (for a label: of the event it labels), `drifted`
    whether the world had changed for it, `bad` whether it is invalid on purpose."""

    stream: str
    key: bytes | None
    value: bytes
    index: int = 0
    drifted: bool = False
    bad: bool = False


@dataclass(frozen=True)
class Scenario:
    """A loaded scenario: its record generator, if given the event-id → index map, and the
    module itself (for what else a project's scenario.py defines)."""

    generate: Callable[[int, int, float, int], Iterator[DemoRecord]]
    index_of: Callable[[str], int] | None = None
    module: ModuleType | None = None


def load_scenario(project_dir: Path | str) -> Scenario:
    """Import `scenario.py` of a project; ConfigError when it has none or it lacks
    `generate`."""
    path = Path(project_dir) / SCENARIO_FILE
    if not path.is_file():
        raise ConfigError(f"{project_dir} has no {SCENARIO_FILE}: `fti demo` needs one that "
                          "defines generate(count, drift_at, bad_fraction, seed)")
    name = f"fti_scenario_{next(_loads)}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses of the module look themselves up there
    spec.loader.exec_module(module)
    generate: Any = getattr(module, "generate", None)
    if not callable(generate):
        raise ConfigError(f"{path} defines no generate(count, drift_at, bad_fraction, seed)")
    return Scenario(generate, getattr(module, "index_of", None), module)
