"""Run every module's docstring examples once, by the module's import name under `fti`.

pytest's `--doctest-modules` would import the mapped folders a second time under their
folder names (`fti.flows.features` beside `fti.flows.features`), so the examples run here
instead, one test per module.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import fti
from fti.settings import OnlineStoreSettings

#: Modules whose imports need an optional extra that a plain install lacks.
OPTIONAL: set[str] = set()
#: Examples that talk to Redis name the default address; they run against the session's Redis.
DEFAULT_REDIS_URL = OnlineStoreSettings().redis_url


def _modules() -> list[str]:
    names = ["fti"]
    for info in pkgutil.walk_packages(fti.__path__, "fti."):
        names.append(info.name)
    # The mapped folders are packages of their own: walk them too.
    for sub in ("flows", "connectors", "features", "models", "infra", "bench"):
        package = importlib.import_module(f"fti.{sub}")
        names.append(package.__name__)
        names += [i.name for i in pkgutil.walk_packages(package.__path__, f"fti.{sub}.")]
    return sorted(n for n in set(names) - OPTIONAL if not n.endswith(".__main__"))


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name: str, request: pytest.FixtureRequest) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):
        if any(DEFAULT_REDIS_URL in example.source for example in test.examples):
            redis_url = request.getfixturevalue("redis_url")
            for example in test.examples:
                example.source = example.source.replace(DEFAULT_REDIS_URL, redis_url)
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
