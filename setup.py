"""Map the repository's top-level folders into the one `fti` namespace.

The folders `flows/`, `connectors/`, `features/`, `models/`, `infra/` and `bench/` stay at
the repository root but install and import as `fti.flows`, `fti.connectors`, … . Once
`package-dir` is customised setuptools stops discovering packages by itself
(pypa/setuptools#4248), so the package list is computed here: a new subpackage ships
without editing a list.
"""

from setuptools import find_packages, setup

#: Import name → folder holding it.
FOLDERS = {
    "fti": "fti",
    "fti.flows": "flows",
    "fti.connectors": "connectors",
    "fti.features": "features",
    "fti.models": "models",
    "fti.infra": "infra",
    "fti.bench": "bench",
}


def packages() -> list[str]:
    """Every package under each mapped folder, named under `fti`."""
    found = []
    for name, folder in FOLDERS.items():
        found.append(name)
        found += [f"{name}.{sub}" for sub in find_packages(folder)]
    return found


if __name__ == "__main__":  # setuptools runs this file as __main__; tests import it
    setup(packages=packages(), package_dir=FOLDERS)
