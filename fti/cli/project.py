"""`fti init|plan|apply`: start a project, see what changed in its definitions, record them.

``fti/cli/main.py`` calls ``add_project_parsers(sub)``; each parser sets ``handler`` like
every other sub-command. `plan` and `apply` take ``--project DIR`` (default: the current
directory), whose ``fti.yaml`` the settings are read from when it has one.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from fti.features.project.loader import load_project
from fti.features.project.plan import applied, apply, definitions_dir, plan
from fti.features.project.scaffold import init_project
from fti.settings import Settings


def cmd_init(args: argparse.Namespace, settings: Settings) -> int:
    """Start a project: DIR/fti.yaml (commented settings) and DIR/definitions.py (an example
    with streams, feature groups, a label and a feature view)."""
    for path in init_project(args.directory, force=args.force):
        print(f"created {path}")
    folder = shlex.quote(str(args.directory))
    print("\nnext steps:\n"
          f"  edit {Path(args.directory) / 'definitions.py'}   streams, features, label, view\n"
          f"  fti plan --project {folder}    what apply would record\n"
          f"  fti apply --project {folder}   record the definitions")
    return 0


def cmd_plan(args: argparse.Namespace, settings: Settings) -> int:
    """Show what changed in the project's definitions since the last `fti apply`: + new,
    ~ changed, - removed, and errors (a breaking change needs a new version=)."""
    project = load_project(args.project)
    current = applied(settings.data_dir)
    where = definitions_dir(settings.data_dir)
    print(f"comparing {project.directory} with "
          + (f"applied v{current.version} in {where}" if current else f"nothing applied in {where}")
          + "\n")
    result = plan(project, current.spec if current is not None else None)
    print(result.render(), flush=True)
    result.check()
    return 0


def cmd_apply(args: argparse.Namespace, settings: Settings) -> int:
    """Record the project's definitions as the next version in data_dir/definitions (when they
    changed and the plan is valid)."""
    project = load_project(args.project)
    before = applied(settings.data_dir)
    print(plan(project, before.spec if before is not None else None).render(), flush=True)
    after = apply(project, settings.data_dir)
    if before is not None and before.version == after.version:
        print(f"definitions unchanged: v{after.version} stays applied (sha256 {after.sha256})")
    else:
        print(f"applied definitions v{after.version} (sha256 {after.sha256}) to {after.path}")
    return 0


def add_project_parsers(subparsers: Any) -> None:
    """Add `init`, `plan` and `apply` to the `fti` sub-command parsers.

    >>> parser = argparse.ArgumentParser(prog="fti")
    >>> add_project_parsers(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["plan", "--project", "shop"]).project
    PosixPath('shop')
    """
    def add(name: str, handler: Any) -> argparse.ArgumentParser:
        p = subparsers.add_parser(name, help=handler.__doc__, description=handler.__doc__)
        p.set_defaults(handler=handler)
        return p

    p = add("init", cmd_init)
    p.add_argument("directory", type=Path, help="the project directory (made when missing)")
    p.add_argument("--force", action="store_true",
                   help="overwrite an existing fti.yaml and definitions.py")
    for name, handler in (("plan", cmd_plan), ("apply", cmd_apply)):
        add(name, handler).add_argument(
            "--project", type=Path, default=Path("."), metavar="DIR",
            help="the project directory (default: the current one); settings come from its "
                 "fti.yaml when it has one")
