"""`fti dataset create|list|show`: build, browse and verify versioned training datasets of a
project's models.

``fti/cli/main.py`` calls ``add_dataset_parser(sub)``; the parser sets ``handler`` to
``run_dataset_command`` like every other sub-command. Every action takes ``--project DIR``
(default: the current directory), whose ``fti.yaml`` gives the settings; ``create`` and
``show --hash`` read the project's applied definitions.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from fti.features.dataset_records import (
    DatasetRecord,
    dataset_sha256,
    load_dataset_record,
    rows_sha256,
)
from fti.features.datasets import (
    CREATE_STEPS,
    SPLIT_KINDS,
    create_dataset,
    dataset_files,
    datasets_dir,
    list_datasets,
    project_model,
    read_dataset,
)
from fti.features.splits import SPLIT_NAMES, TimeRange
from fti.settings import Settings

if TYPE_CHECKING:
    from fti.features.project.loader import Project

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``1h``, ``2d`` or combinations such as ``1h30m``.

    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    """
    parts = _DURATION.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}; use a number and s, m, h or d, e.g. 90s, 30m, 1h, 1h30m"
        )
    return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))


def parse_time(text: str) -> datetime:
    """An RFC 3339 time with a zone (``Z`` or an offset).

    >>> parse_time("2026-01-02T03:00:00Z").isoformat()
    '2026-01-02T03:00:00+00:00'
    """
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        value = None
    if value is None or value.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}; use RFC 3339 with a zone, e.g. 2026-01-02T03:00:00Z"
        )
    return value


def parse_range(text: str) -> TimeRange:
    """``START..END`` (either side may be empty for an open end), each RFC 3339.

    >>> parse_range("..2026-01-02T00:00:00Z")[0] is None
    True
    """
    start, sep, end = text.partition("..")
    if not sep or not (start or end):
        raise argparse.ArgumentTypeError(
            f"invalid range {text!r}; use START..END (RFC 3339), e.g. "
            "2026-01-01T00:00:00Z..2026-01-08T00:00:00Z"
        )
    return (parse_time(start) if start else None, parse_time(end) if end else None)


def parse_fractions(text: str) -> tuple[float, float, float]:
    """Three comma-separated numbers: train, validation, test.

    >>> parse_fractions("0.7,0.1,0.2")
    (0.7, 0.1, 0.2)
    """
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(
            f"invalid fractions {text!r}; give train,validation,test, e.g. 0.65,0.15,0.2"
        )
    return values  # type: ignore[return-value]


def add_dataset_parser(subparsers: Any) -> None:
    """Add ``dataset`` with its actions ``create``, ``list`` and ``show`` to ``subparsers``.

    >>> parser = argparse.ArgumentParser(prog="fti")
    >>> add_dataset_parser(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["dataset", "create", "--model", "m", "--seed", "7"])
    >>> args.project, args.model, args.split, args.fractions, args.seed
    (PosixPath('.'), 'm', 'time', (0.65, 0.15, 0.2), 7)
    """
    doc = ("Create, list and show versioned training datasets of a project's models "
           "(point-in-time rows of the model's view, split, Parquet, a verifiable record).")
    parser = subparsers.add_parser("dataset", help=doc, description=doc)
    parser.set_defaults(handler=run_dataset_command)
    actions = parser.add_subparsers(dest="dataset_action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="build a dataset version of a model's view")
    create.add_argument("--model", default=None,
                        help="a model the project declares (default: its only one)")
    create.add_argument("--split", choices=SPLIT_KINDS, default="time",
                        help="time: by the label's event time; random; stratified: random, "
                             "same class shares of the label (classification models)")
    create.add_argument("--fractions", type=parse_fractions, default=(0.65, 0.15, 0.2),
                        help="train,validation,test (default 0.65,0.15,0.2)")
    create.add_argument("--gap", type=parse_duration, default=None,
                        help="time split: drop rows this close after the previous split (1h)")
    for name in SPLIT_NAMES:
        create.add_argument(f"--{name}-range", type=parse_range, default=None, metavar="START..END",
                            help=f"event-time range of {name} (RFC 3339; replaces --fractions)")
    create.add_argument("--seed", type=int, default=42, help="random and stratified splits")
    listing = actions.add_parser("list", help="every dataset version, one line each")
    show = actions.add_parser("show", help="one dataset version")
    show.add_argument("number", type=int)
    show.add_argument("--hash", action="store_true",
                      help="re-read the rows at the recorded table versions and check the sha256")
    show.add_argument("--json", action="store_true", help="print the record as JSON")
    for action in (create, listing, show):
        action.add_argument(
            "--project", type=Path, default=Path("."), metavar="DIR",
            help="the project directory (default: the current one); settings come from its "
                 "fti.yaml when it has one")


def run_dataset_command(args: argparse.Namespace, settings: Settings) -> int:
    """Carry out one ``fti dataset`` action; 1 when ``show --hash`` finds a mismatch."""
    if args.dataset_action == "create":
        return _create(args, settings)
    if args.dataset_action == "list":
        return _list(settings)
    return _show(args, settings)


def _applied_project(directory: Path, settings: Settings) -> Project:
    """The project in ``directory``, refused unless its definitions are the applied ones."""
    from fti.features.project.applied import check_applied
    from fti.features.project.loader import load_project

    project = load_project(directory)
    check_applied(project, settings.data_dir)
    return project


def _create(args: argparse.Namespace, settings: Settings) -> int:
    model = project_model(_applied_project(args.project, settings), args.model)
    given = {name: getattr(args, f"{name}_range") for name in SPLIT_NAMES}
    ranges = {k: v for k, v in given.items() if v is not None} or None
    with tqdm(total=len(CREATE_STEPS), desc="dataset", unit="step",
              disable=not sys.stderr.isatty()) as bar:
        def step(name: str) -> None:
            bar.set_postfix_str(name)
            bar.update(1)

        number = create_dataset(settings, model, split=args.split, fractions=args.fractions,
                                seed=args.seed, gap=args.gap, ranges=ranges, on_step=step)
    record = load_dataset_record(datasets_dir(settings), number)
    print(f"dataset {number}: model {record.model} (view {record.view}), {_split_text(record)}; "
          f"{_rows_text(record)} rows; tables {_tables_text(record)}; "
          f"files in {datasets_dir(settings) / str(number)}")
    return 0


def _list(settings: Settings) -> int:
    records = list_datasets(settings)
    if not records:
        print(f"no datasets in {datasets_dir(settings)}; create one with: "
              "fti dataset create --project DIR --model NAME")
        return 1
    lines = [f"{'N':>4}  {'created (UTC)':19}  {'model':14}  {'view':14}  {'split':32}  "
             f"{'rows train/val/test':21}  table versions"]
    for n, r in records.items():
        lines.append(f"{n:>4}  {r.created_at:%Y-%m-%d %H:%M:%S}  {r.model or '-':14}  "
                     f"{r.view:14}  {_split_text(r):32}  {_rows_text(r, '/'):21}  "
                     f"{_tables_text(r)}")
    print("\n".join(lines))
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    record = load_dataset_record(datasets_dir(settings), args.number)
    check = None
    if args.hash:
        project = _applied_project(args.project, settings)
        check = _hash_check(settings, project, args.number, record)
    if args.json:
        out = {"version": args.number, **record.model_dump(mode="json")}
        out["files"] = {k: str(p) for k, p in dataset_files(settings, args.number).items()
                        if p.is_file()}
        if check is not None:
            out["hash_check"] = check
        print(json.dumps(out, indent=2))
    else:
        print(_describe(settings, args.number, record, check))
    return 0 if check is None or all(c["match"] for c in check.values()) else 1


def _hash_check(settings: Settings, project: Project, n: int,
                record: DatasetRecord) -> dict[str, dict[str, Any]]:
    """Recorded vs re-read sha256, for all rows and for each split."""
    parts = read_dataset(settings, project, n).parts()
    now = {name: rows_sha256(table) for name, table in parts.items()}
    now = {"all": dataset_sha256(record, parts, now)} | now  # each split hashed once
    then = {"all": record.rows_sha256} | {k: v.rows_sha256 for k, v in record.splits.items()}
    return {k: {"recorded": then.get(k), "reread": v, "match": then.get(k) == v}
            for k, v in now.items()}


def _describe(
    settings: Settings, n: int, r: DatasetRecord, check: dict[str, dict[str, Any]] | None
) -> str:
    files = dataset_files(settings, n)
    lines = [f"dataset {n}", f"  created    {r.created_at:%Y-%m-%d %H:%M:%S} UTC",
             f"  model      {r.model or '-'}", f"  view       {r.view}",
             f"  split      {_split_text(r)} (seed {r.seed})",
             f"  tables     {_tables_text(r)}",
             f"  rows       {r.rows} (sha256 {r.rows_sha256[:16]})",
             f"  files      {files['train'].parent if files['train'].is_file() else 'none'}"]
    positives = any(s.positives for s in r.splits.values())
    for name, s in r.splits.items():
        span = (f"{s.label_time_min:%Y-%m-%d %H:%M} .. {s.label_time_max:%Y-%m-%d %H:%M}"
                if s.label_time_min else "-")
        counted = f" {s.positives:>6} positive" if positives else ""
        lines.append(f"  {name:10} {s.rows:>8} rows{counted}  {span}  "
                     f"sha256 {s.rows_sha256[:16]}")
    for name, c in (check or {}).items():
        verdict = "ok" if c["match"] else f"MISMATCH (recorded {str(c['recorded'])[:16]})"
        lines.append(f"  re-read {name:10} sha256 {c['reread'][:16]}  {verdict}")
    return "\n".join(lines)


def _split_text(r: DatasetRecord) -> str:
    if r.ranges:
        return "time ranges"
    if r.fractions is None:  # a training-job record: a time split of the newest labels
        train = round(1 - r.validation_fraction - r.test_fraction, 6)
        return (f"time {train:g}/{r.validation_fraction:g}/{r.test_fraction:g} "
                f"newest {r.window_labels or 'all'}")
    text = f"{r.split} {'/'.join(f'{f:g}' for f in r.fractions)}"
    return text + (f" gap {r.gap}" if r.gap else "")


def _rows_text(r: DatasetRecord, sep: str = ", ") -> str:
    rows = [r.splits[name].rows if name in r.splits else 0 for name in SPLIT_NAMES]
    if sep != "/":
        return sep.join(f"{name} {n}" for name, n in zip(SPLIT_NAMES, rows, strict=True))
    return sep.join(str(n) for n in rows)


def _tables_text(r: DatasetRecord) -> str:
    return " ".join(f"{name}@{version}" for name, version in sorted(r.table_versions.items()))
