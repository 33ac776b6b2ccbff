"""What the benchmarks share to run on a user project.

Every benchmark that runs a project's services takes the project from `--project DIR` (a
directory with `definitions.py` and `scenario.py`; `bench/README.md` passes the example in
`examples/`) and knows no domain: streams, groups, labels, models and topics all come from the
project, the events from its scenario. Here: the option, the project and its scenario, the
model served and the stream it scores, the scenario's records produced to Kafka, history
backfilled into the stores (as `fti backfill` does) and a champion trained on it by the
project's own training job (as `fti train` does).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fti.connectors.kafka.clients import ensure_topic_names, ensure_topics, make_producer
from fti.errors import FtiError
from fti.features.project.applied import apply
from fti.features.project.backfill import backfill
from fti.features.project.fields import Stream
from fti.features.project.loader import Project, load_project
from fti.features.project.model import Model
from fti.ops.scenario import DemoRecord, Scenario, load_scenario
from fti.settings import Settings

#: The option every project benchmark takes; messages name it.
PROJECT_OPTION = "--project"


def add_project_option(parser: argparse.ArgumentParser) -> None:
    """`--project DIR`, required: the benchmarks hold no default project."""
    parser.add_argument(
        PROJECT_OPTION, type=Path, metavar="DIR", required=True,
        help="the project to run: a directory with definitions.py and scenario.py "
             "(bench/README.md passes the example in examples/)")


def add_model_option(parser: argparse.ArgumentParser) -> None:
    """`--model NAME`: a model of the project (default: its first served model)."""
    parser.add_argument("--model", default=None, metavar="NAME",
                        help="a model of the project (default: the first declared with "
                             "serve=True, else the first declared)")


@dataclass(frozen=True)
class BenchProject:
    """A project loaded for a benchmark, with its scenario."""

    directory: Path
    project: Project
    scenario: Scenario

    def model(self, name: str | None = None) -> Model:
        """Model `name`, else the first served model, else the first model."""
        models = self.project.models
        if name is not None:
            if name not in models:
                raise SystemExit(f"{PROJECT_OPTION} {self.directory}: no model {name!r}; it "
                                 f"declares {', '.join(sorted(models)) or 'none'}")
            return models[name]
        served = sorted(n for n, m in models.items() if m.serve)
        chosen = served or sorted(models)
        if not chosen:
            raise SystemExit(f"{PROJECT_OPTION} {self.directory}: the project declares no model")
        return models[chosen[0]]

    def events_stream(self, model: Model | None = None) -> Stream:
        """The stream `model` scores (its view's one stream); without a model, that of the
        first served model, or else the first stream (by name) that feeds a group."""
        from fti.flows.inference import scored_stream

        if model is None and self.project.models:
            model = self.model()
        if model is not None:
            return scored_stream(model)
        fed = sorted({g.stream.name for g in self.project.groups.values()})
        if not fed:
            raise SystemExit(f"{PROJECT_OPTION} {self.directory}: no feature group to measure")
        return self.project.streams[fed[0]]

    def topics(self) -> dict[str, str]:
        """Stream name -> topic."""
        return {name: s.topic for name, s in self.project.streams.items()}

    def records(self, count: int, bad_fraction: float = 0.0, seed: int = 7,
                drift_at: int | None = None) -> Iterator[DemoRecord]:
        """The scenario's records for `count` events (drift only when `drift_at` says)."""
        return self.scenario.generate(count, count + 1 if drift_at is None else drift_at,
                                      bad_fraction, seed)


def open_project(directory: Path | None) -> BenchProject:
    """The project in `directory` and its scenario; SystemExit naming `--project` when it is
    missing or cannot be loaded."""
    if directory is None:
        raise SystemExit(f"{PROJECT_OPTION} DIR is required: the project to run (a directory "
                         "with definitions.py and scenario.py; see bench/README.md)")
    try:
        project = load_project(directory)
        scenario = load_scenario(directory)
    except FtiError as ex:
        raise SystemExit(f"{PROJECT_OPTION} {directory}: {ex}") from ex
    return BenchProject(Path(directory), project, scenario)


def prepare_broker(settings: Settings, project: Project) -> None:
    """Create the platform's topics and the project's, and apply its definitions to
    `settings.data_dir` (services refuse a project that is not applied)."""
    ensure_topics(settings.kafka, settings.topics)
    ensure_topic_names(settings.kafka, project.topics())
    apply(project, settings.data_dir)


@dataclass
class Produced:
    """What `produce` sent: events of the measured stream (bad ones among them), others, and
    the measured events' ids (when the stream declares an id field and `ids` was asked)."""

    events: int = 0
    bad: int = 0
    others: int = 0
    ids: list[str] = field(default_factory=list)


def event_id(value: bytes, id_field: str | None) -> str | None:
    """The id of an event's JSON value (None when it has none or is not JSON)."""
    if id_field is None:
        return None
    try:
        decoded = json.loads(value)
    except (ValueError, RecursionError):
        return None
    found = decoded.get(id_field) if isinstance(decoded, dict) else None
    return None if found is None else str(found)


def produce(settings: Settings, records: Iterable[DemoRecord], topics: Mapping[str, str],
            stream: str, rate: float = 0.0, only_stream: bool = True,
            id_field: str | None = None, produced: Produced | None = None) -> Produced:
    """Produce `records` to their streams' topics (only those of `stream` with `only_stream`),
    `rate` events of `stream` per second (0: as fast as possible); what was sent. With
    `id_field`, the ids of the events are kept in order."""
    out = produced if produced is not None else Produced()
    producer = make_producer(settings.kafka)
    start = time.monotonic()
    sent = 0
    for record in records:
        if record.stream != stream:
            if only_stream:
                continue
            out.others += 1
        else:
            out.events += 1
            out.bad += record.bad
            if id_field is not None:
                found = event_id(record.value, id_field)
                if found is not None:
                    out.ids.append(found)
        while True:
            try:
                producer.produce(topics[record.stream], key=record.key, value=record.value)
                break
            except BufferError:  # the local queue is full: let deliveries drain
                producer.poll(0.05)
        producer.poll(0)
        if record.stream == stream:
            sent += 1
            if rate and sent % 20 == 0:
                ahead = start + sent / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
    left = producer.flush(60)
    if left:
        raise RuntimeError(f"{left} records were not delivered within 60 s")
    return out


def split_at(records: Iterable[DemoRecord], stream: str, first: int
             ) -> tuple[list[DemoRecord], list[DemoRecord]]:
    """Records of the first `first` events of `stream` (with the other streams' records of
    those events, e.g. their labels), and the rest (events of `stream` only)."""
    early: list[DemoRecord] = []
    late: list[DemoRecord] = []
    for record in records:
        if record.index < first:
            early.append(record)
        elif record.stream == stream:
            late.append(record)
    return early, late


def backfill_records(settings: Settings, project: Project, records: Sequence[DemoRecord],
                     directory: Path) -> dict[str, int]:
    """Write `records` to one JSON-lines file per stream and run each through `fti backfill`'s
    code (the stream's groups and labels) into the offline tables and the online state;
    the rows written per stream."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {name: directory / f"{name}.jsonl" for name in project.streams}
    handles = {name: path.open("wb") for name, path in files.items()}
    try:
        for record in records:
            handles[record.stream].write(record.value + b"\n")
    finally:
        for handle in handles.values():
            handle.close()
    written: dict[str, int] = {}
    for name, path in files.items():
        if path.stat().st_size == 0:
            continue
        stream = project.streams[name]
        groups = [g for g in project.groups.values() if g.stream.name == name]
        labels = [x for x in project.labels.values() if x.stream.name == name]
        if not groups and not labels:
            continue
        report = backfill(settings, stream, groups, labels, [path])
        written[name] = report.events
    return written


def train_champion(settings: Settings, project: Project, model: str) -> tuple[int, bool]:
    """One run of the model's training job; its version, made champion even when its gates
    failed (a benchmark measures speed, not quality: said on stderr), and whether it passed."""
    from fti.models.jobs.model_job import run_model_job
    from fti.models.registry import CHAMPION, ModelRegistry

    result = run_model_job(settings, project, model)
    if not result.promoted:
        print(f"bench: {model} v{result.version} failed its gates ({result.reasons}); "
              "serving it anyway", file=sys.stderr)
        ModelRegistry(settings.registry_location).set_alias(
            model, CHAMPION, result.version, reason="benchmark: serve it", forced=True)
    return result.version, result.promoted
