"""The `fti` command line: one entry point for the broker, producer, flows, training and demo.

Every sub-command has `--help`; settings come from `FTI_*` env vars and `fti.yaml` (or the
file named by `FTI_CONFIG`; for `plan` and `apply`, the project's `fti.yaml`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fti.errors import FtiError
from fti.logging_setup import configure_logging
from fti.settings import Settings, load_project_settings, load_settings

log = logging.getLogger("fti")

Handler = Callable[[argparse.Namespace, Settings], int]


def cmd_broker(args: argparse.Namespace, settings: Settings) -> int:
    """Start the embedded broker, create the topics, and serve until Ctrl-C / SIGTERM."""
    from fti.connectors.kafka.clients import ensure_topics
    from fti.flows.service import stop_on_signals
    from fti.infra.embedded_broker import EmbeddedBroker

    broker_settings = settings.broker.model_copy(update={"port": args.port or settings.broker.port})
    stop = stop_on_signals()
    with EmbeddedBroker(broker_settings) as broker:
        kafka = settings.kafka.model_copy(update={"bootstrap_servers": broker.bootstrap_servers})
        ensure_topics(kafka, settings.topics)
        topics = ", ".join(settings.topics.all())
        print(f"broker ready on {broker.bootstrap_servers}; topics: {topics}", flush=True)
        while not stop.wait(0.5):
            code = broker.exit_code()
            if code is not None:  # a supervisor must see the broker die
                print(f"fti broker: the broker process exited with code {code}; its topics "
                      "are gone (memory storage)", file=sys.stderr)
                return 1
    return 0


def cmd_produce(args: argparse.Namespace, settings: Settings) -> int:
    """Produce a project's scenario (its `scenario.py`: a synthetic stream and its labels)."""
    from fti.connectors.kafka.clients import ensure_topic_names
    from fti.features.project.loader import load_project
    from fti.ops.producer import ScenarioProducer
    from fti.ops.scenario import load_scenario

    project = load_project(args.project)
    scenario = load_scenario(args.project)
    served = [m for m in project.models.values() if m.serve] or list(project.models.values())
    events = (served[0].view.groups[0].stream.name if served
              else sorted(g.stream.name for g in project.groups.values())[0])
    ensure_topic_names(settings.kafka, project.topics(), settings.topics.partitions)
    drift_at = args.drift_at if args.drift_at is not None else args.count + 1
    records = scenario.generate(args.count, drift_at, args.bad_fraction, args.seed)
    topics = {name: stream.topic for name, stream in project.streams.items()}
    producer = ScenarioProducer(settings, records, topics, events, args.count)
    producer.send(args.count, rate=args.rate, progress=sys.stderr.isatty())
    producer.finish()
    c = producer.counts
    print(json.dumps({"stream": events, "events": c.events, "bad": c.bad_events,
                      "labels": c.labels, "drifted": c.drifted}))
    return 0


def cmd_flow(args: argparse.Namespace, settings: Settings) -> int:
    """Run one Bytewax flow as a service."""
    from fti.flows.service import Cluster, run_flow_service

    addresses = tuple(a for a in (args.addresses or "").split(";") if a)
    project = _applied_project(args.project, settings)
    run_flow_service(args.name, settings, Cluster(args.process_id, addresses, args.workers),
                     project=project, models=args.model or ())
    return 0


def cmd_trainer(args: argparse.Namespace, settings: Settings) -> int:
    """Run the trainer service: one training job per (coalesced) retrain request."""
    from fti.flows.service import stop_on_signals
    from fti.metrics import serve_metrics
    from fti.models.jobs.trainer_service import TrainerService

    project = _applied_project(args.project, settings)
    health = serve_metrics(settings.metrics.trainer_port, settings.metrics.host)
    stop = stop_on_signals(on_stop=lambda: health.set_not_ready("stopping"))
    TrainerService(settings, project=project).run(
        stop, on_ready=lambda: health.set_ready("consumer subscribed"))
    return 0


def _applied_project(directory: Path, settings: Settings) -> Any:
    """The project in `directory`, refused unless its definitions are applied."""
    from fti.features.project.applied import check_applied
    from fti.features.project.loader import load_project

    project = load_project(directory)
    check_applied(project, settings.data_dir)
    return project


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    """Train a declared model once now, gate, register, and publish the registry events."""
    from fti.connectors.kafka.clients import check_reachable
    from fti.models.jobs.model_job import run_model_job
    from fti.models.jobs.trainer_service import RegistryEventPublisher

    if args.job_from_stdin:
        from fti.models.jobs.warm import read_job, warm_up

        warm_up()
        job = read_job(sys.stdin)
        if job is None:  # the service stopped before it needed this process
            return 0
        args.project, args.model = Path(job["project"]), job["model"]
        args.reason, args.job_id = job["reason"], job["job_id"]
    project = _applied_project(args.project, settings)
    publish = None
    if not args.no_publish:
        check_reachable(settings.kafka)  # fail in seconds, before training, not after
        publish = RegistryEventPublisher(settings)
    result = run_model_job(settings, project, args.model, reason=args.reason, publish=publish,
                           progress=True, params_from=args.params_from)
    print(json.dumps(_jsonable(result.__dict__), default=str))
    if result.unpublished:
        print(f"fti train: {result.unpublished}", file=sys.stderr)
        return 3
    return 0


def cmd_tune(args: argparse.Namespace, settings: Settings) -> int:
    """Search a declared model's hyperparameters on its view's dataset (Optuna TPE or random
    with pruning, or Ray Tune); record the best under data_dir/hpo for
    `fti train --project DIR --model NAME --params-from latest`."""
    from fti.models.hpo.job import run_search_job
    from fti.models.hpo.records import search_record_path

    fixed: dict[str, Any] = {}
    for item in args.fix or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise FtiError(f"--fix takes KEY=VALUE, got {item!r}")
        try:
            fixed[key] = json.loads(raw)
        except ValueError:
            fixed[key] = raw
    project = _applied_project(args.project, settings)
    record = run_search_job(settings, project, args.model, n_trials=args.trials,
                            timeout_s=args.timeout, seed=args.seed, sampler=args.sampler,
                            progress=sys.stderr.isatty(), fixed_params=fixed,
                            backend=args.backend)
    print(json.dumps({
        "model": record.model, "metric": record.metric, "direction": record.direction,
        "best_params": record.best_params, "best_value": record.best_value,
        "trials": len(record.trials), "pruned": record.pruned,
        "duration_s": record.duration_s,
        "record": str(search_record_path(settings.data_dir, record.model, record.created_at)),
    }))
    return 0


def cmd_store(args: argparse.Namespace, settings: Settings) -> int:
    """Maintain the offline store: compact the small fragments that streaming appends leave."""
    from datetime import timedelta

    from fti.connectors.errors import OfflineTableError
    from fti.connectors.offline.store import LanceOfflineStore

    store = LanceOfflineStore(settings.offline_location)
    names = [args.table] if args.table else store.table_names()
    if not names:
        raise OfflineTableError(f"no tables in the offline store at {settings.offline_dir}")
    prune = timedelta(days=args.prune_older_than_days) if args.prune_older_than_days else None
    for name in names:
        c = store.compact(name, prune)
        print(f"{c.table}: {c.fragments_before} -> {c.fragments_after} fragments, "
              f"version {c.version_before} -> {c.version_after}, {c.rows} rows")
    return 0


BENCHMARKS = (
    "feature-ingest", "online-lookup", "pit-join", "inference", "detectors", "soak",
    "train-overhead", "model-swap", "lora-steps", "peer-quix",
)


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    """Run a benchmark from bench/ (arguments after the name go to it; try NAME --help)."""
    import runpy

    sys.argv = [f"fti bench {args.name}", *args.bench_args]
    runpy.run_module(f"fti.bench.{args.name.replace('-', '_')}", run_name="__main__")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Run the whole loop of a project (its definitions and scenario.py) on the embedded
    default and print a summary."""
    from dataclasses import replace

    from fti.ops.demo import DemoOptions, run_demo

    options = DemoOptions(events=args.events, rate=args.rate, drift_at=args.drift_at,
                          bad_fraction=args.bad_fraction, seed=args.seed, timeout_s=args.timeout)
    if args.project is not None:
        options = replace(options, project=args.project)
    return run_demo(settings, options)


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    """Run the broker (if needed) and a project's services, supervised, until Ctrl-C /
    SIGTERM: its feature engine, and when it declares models its monitor, trainer and
    inference."""
    from fti.ops.up import run_up

    _applied_project(args.project, settings)
    return run_up(settings, project=args.project)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(prog="fti", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=handler.__doc__, description=handler.__doc__)
        p.set_defaults(handler=handler)
        return p

    add("broker", cmd_broker).add_argument("--port", type=int, help="default: FTI_BROKER__PORT")
    p = add("produce", cmd_produce)
    p.add_argument("--project", type=Path, metavar="DIR", required=True,
                   help="a project with a scenario.py (each example under examples/ has one)")
    p.add_argument("--count", type=int, default=10000, help="events to produce")
    p.add_argument("--rate", type=float, default=0.0, help="events per second (0 = max)")
    p.add_argument("--drift-at", type=int, default=None, help="index where the world changes")
    p.add_argument("--bad-fraction", type=float, default=0.0, help="fraction of bad events")
    p.add_argument("--seed", type=int, default=7)
    p = add("flow", cmd_flow)
    p.add_argument("name", choices=["materialize", "inference", "monitor"])
    p.add_argument("-w", "--workers", type=int, default=1, help="worker threads per process")
    p.add_argument("-i", "--process-id", type=int, default=0, help="this process in -a")
    p.add_argument("-a", "--addresses", default=None,
                   help='cluster: one host:port per process, ";"-separated')
    p.add_argument("--project", type=Path, metavar="DIR", default=Path("."),
                   help="the project whose flow to run, after `fti apply` (default: .)")
    p.add_argument("--model", action="append", metavar="NAME",
                   help="inference: serve only this model (repeatable; default: every model "
                        "declared with serve=True)")
    add("trainer", cmd_trainer).add_argument(
        "--project", type=Path, metavar="DIR", default=Path("."),
        help="the project whose models to train when asked (default: .)")
    p = add("train", cmd_train)
    p.add_argument("--project", type=Path, metavar="DIR", default=Path("."),
                   help="the project declaring the model, after `fti apply` (default: .)")
    p.add_argument("--model", default=None, help="a model of the project (default: its only one)")
    p.add_argument("--reason", default="manual", choices=["manual", "drift", "volume"])
    p.add_argument("--no-publish", action="store_true", help="do not write registry.events")
    p.add_argument("--job-id", default=None, help="trainer-service job this run belongs to")
    p.add_argument("--job-from-stdin", action="store_true",
                   help="load the training code first, then read the job (a JSON line of "
                        "project, model, reason, job_id) from stdin: the trainer service "
                        "keeps one such process warm so a retrain starts at once")
    p.add_argument("--params-from", default=None, metavar="latest|FILE",
                   help="override hyperparameters with a `fti tune` record")
    p = add("tune", cmd_tune)
    p.add_argument("--project", type=Path, metavar="DIR", required=True,
                   help="a user project: search its model --model (after `fti apply`)")
    p.add_argument("--model", default=None, help="a model of the project (default: its only one)")
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--timeout", type=float, default=None, help="seconds; a running trial ends")
    p.add_argument("--sampler", choices=["tpe", "random"], default="tpe")
    p.add_argument("--seed", type=int, default=None, help="default: FTI_TRAINING__SEED")
    p.add_argument("--fix", action="append", metavar="KEY=VALUE",
                   help="pin a hyperparameter for every trial (JSON value; repeatable)")
    p.add_argument("--backend", choices=["optuna", "ray"], default="optuna",
                   help="ray: the same trials on Ray Tune (the `ray` extra; RAY_ADDRESS)")
    from fti.cli.registry import add_registry_parser

    add_registry_parser(sub)
    p = add("store", cmd_store)
    p.add_argument("action", choices=["compact"])
    p.add_argument("--table", default=None, help="one table (default: all)")
    p.add_argument("--prune-older-than-days", type=float, default=None,
                   help="also delete versions older than this (breaks time travel to them)")
    from fti.cli.dataset import add_dataset_parser

    add_dataset_parser(sub)
    from fti.cli.project import add_project_parsers

    add_project_parsers(sub)
    p = add("bench", cmd_bench)
    p.add_argument("name", choices=BENCHMARKS)
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="the benchmark's own options")
    add("up", cmd_up).add_argument(
        "--project", type=Path, metavar="DIR", default=Path("."),
        help="the project to run, after `fti apply` (default: .)")
    p = add("demo", cmd_demo)
    p.add_argument("--events", type=int, default=150000,
                   help="most events to produce (it stops once the loop has closed)")
    p.add_argument("--rate", type=float, default=1500.0, help="events per second")
    p.add_argument("--drift-at", type=int, default=8000)
    p.add_argument("--bad-fraction", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--timeout", type=float, default=280.0, help="seconds before giving up")
    p.add_argument("--project", type=Path, metavar="DIR", default=None,
                   help="a project with a scenario.py (default: the current directory; "
                        "`make demo` runs the example in examples/)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `fti` command."""
    # Before xgboost/torch load: idle OpenMP threads sleep instead of spinning, which on a
    # small machine shared by several services cost up to 10x in training and load times.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = build_parser().parse_args(argv)
    try:
        project = getattr(args, "project", None)
        settings = load_project_settings(project) if project is not None else load_settings()
        service = args.name if args.command == "flow" else args.command
        configure_logging(settings.log_level, settings.log_format, service=service)
        return args.handler(args, settings)
    except FtiError as ex:
        print(f"fti {args.command}: {ex}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
