"""`fti init|plan|apply|materialize|backfill|features`: start a project, see what changed in
its definitions, record them, compute its features from Kafka or from files, read them.

``fti/cli/main.py`` calls ``add_project_parsers(sub)``; each parser sets ``handler`` like
every other sub-command. `plan` and `apply` take ``--project DIR`` (default: the current
directory), whose ``fti.yaml`` the settings are read from when it has one.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from fti.features.errors import DefinitionError
from fti.features.project.applied import applied, apply, check_applied, definitions_dir
from fti.features.project.loader import Project, load_project
from fti.features.project.plan import plan
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


def _applied_project(args: argparse.Namespace, settings: Settings) -> Project:
    project = load_project(args.project)
    check_applied(project, settings.data_dir)
    return project


def cmd_materialize(args: argparse.Namespace, settings: Settings) -> int:
    """Run the feature engine of the applied project until Ctrl-C / SIGTERM: every group from
    its stream into the online and offline stores, labels into their tables, bad events to
    each stream's DLQ with the rule they broke."""
    from fti.connectors.kafka.clients import check_reachable, ensure_topic_names
    from fti.flows.service import Cluster, run_flow_service

    project = _applied_project(args, settings)
    check_reachable(settings.kafka)
    ensure_topic_names(settings.kafka, project.topics())
    addresses = tuple(a for a in (args.addresses or "").split(";") if a)
    run_flow_service("materialize", settings, Cluster(args.process_id, addresses, args.workers),
                     project=project)
    return 0


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    """Run historical events from Parquet, CSV or JSON-lines files through the applied
    definitions of one stream: its groups' offline tables and online state, its labels."""
    from tqdm import tqdm

    from fti.features.project.backfill import backfill

    project = _applied_project(args, settings)
    stream = project.streams.get(args.stream)
    if stream is None:
        raise DefinitionError(f"backfill: no stream {args.stream!r}; the project has "
                              f"{', '.join(sorted(project.streams)) or 'none'}")
    groups = [g for g in project.groups.values() if g.stream.name == stream.name]
    labels = [label for label in project.labels.values() if label.stream.name == stream.name]
    with tqdm(unit="rows", desc=f"backfill {stream.name}") as bar:
        report = backfill(settings, stream, groups, labels, args.files, on_rows=bar.update)
    print(f"{report.rows} rows read, {report.events} valid events")
    for table, n in sorted(report.written.items()):
        print(f"  {table}: {n} rows written")
    for rule, n in report.rejected.most_common():
        print(f"  rejected by {rule}: {n}")
    for example in report.examples:
        print(f"    e.g. {example}")
    return 0


def cmd_features(args: argparse.Namespace, settings: Settings) -> int:
    """Read features: `online GROUP KEY…` prints each entity's latest values as JSON lines;
    `training VIEW --out FILE.parquet` writes the view's point-in-time training data."""
    import json

    import pyarrow.parquet as pq

    from fti.connectors.online import open_online_store
    from fti.features.project.training import read_view

    project = _applied_project(args, settings)
    if args.action == "online":
        group = project.groups.get(args.name)
        if group is None:
            raise DefinitionError(f"no group {args.name!r}; the project has "
                                  f"{', '.join(sorted(project.groups)) or 'none'}")
        store = open_online_store(settings)
        try:
            found = store.lookup([f"{group.table_name}:{k}" for k in args.keys])
        finally:
            store.close()
        for key in args.keys:
            answer = found[f"{group.table_name}:{key}"]
            row = answer.row
            print(json.dumps({group.entity: key, "status": answer.status,
                              "event_time": row.event_time if row else None,
                              **(row.features if row else {})}))
        return 0
    view = project.views.get(args.name)
    if view is None:
        raise DefinitionError(f"no view {args.name!r}; the project has "
                              f"{', '.join(sorted(project.views)) or 'none'}")
    table = read_view(view, str(settings.offline_location))
    out = args.out or Path(f"{view.name}.parquet")
    pq.write_table(table, out)
    print(f"{table.num_rows} rows, {table.num_columns} columns -> {out}")
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
    parsers = {name: add(name, handler) for name, handler in (
        ("plan", cmd_plan), ("apply", cmd_apply), ("materialize", cmd_materialize),
        ("backfill", cmd_backfill), ("features", cmd_features))}
    for p in parsers.values():
        p.add_argument(
            "--project", type=Path, default=Path("."), metavar="DIR",
            help="the project directory (default: the current one); settings come from its "
                 "fti.yaml when it has one")
    p = parsers["materialize"]
    p.add_argument("--workers", type=int, default=1, help="worker threads in this process")
    p.add_argument("--process-id", type=int, default=0, help="this process's index")
    p.add_argument("--addresses", help="host:port of every process, ';'-separated")
    p = parsers["backfill"]
    p.add_argument("--stream", required=True, help="the declared stream the files hold")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE",
                   help=".parquet, .csv or .jsonl files, processed in the order given")
    p = parsers["features"]
    p.add_argument("action", choices=("online", "training"))
    p.add_argument("name", help="a group (online) or a view (training)")
    p.add_argument("keys", nargs="*", help="entity keys (online)")
    p.add_argument("--out", type=Path, help="Parquet file (training; default VIEW.parquet)")
