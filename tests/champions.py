"""Champions for the tests that serve the fraud example (or a project with its streams):
history backfilled from files (so the topics hold only the test's own events), a declared
model trained on it by its training job, and the synthetic records of a given start."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from fti.features.project.backfill import backfill
from fti.features.project.loader import Project
from fti.models.jobs.model_job import run_model_job
from fti.models.jobs.outcome import Publish, TrainingResult
from fti.models.registry import CHALLENGER, CHAMPION, ModelRegistry
from fti.ops.producer import ScenarioProducer
from fti.ops.scenario import DemoRecord
from fti.settings import Settings
from tests.example_projects import scenario_module

FRAUD = scenario_module("fraud")
#: The fraud example's stream spec (count, seed, start, drift, bad fraction).
StreamSpec = FRAUD.StreamSpec
#: Streams of the fraud example by the synthetic generator's record kind.
STREAMS = FRAUD.STREAMS
#: History starts a month before the example's scenario, so it is over when live events come.
HISTORY_START = datetime(2025, 12, 1, tzinfo=UTC)


def records(spec: StreamSpec) -> Iterator[DemoRecord]:
    """The fraud example's records (as its scenario.py makes them) from `spec`, which unlike
    the scenario may say when the stream starts."""
    for r in FRAUD.records(spec):
        yield DemoRecord(STREAMS[r.kind], r.key, r.value, r.index, r.drifted, r.bad)


def producer(settings: Settings, project: Project, spec: StreamSpec) -> ScenarioProducer:
    """A producer of `records(spec)` to the project's topics."""
    topics = {name: stream.topic for name, stream in project.streams.items()}
    return ScenarioProducer(settings, records(spec), topics, "transactions", spec.count)


def backfill_history(settings: Settings, project: Project, directory: Path,
                     count: int = 4000, seed: int = 101) -> int:
    """`count` transactions and their labels from HISTORY_START, through `fti backfill`'s
    code into the offline tables and the online state; the label rows written."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {name: directory / f"{name}-{seed}.jsonl" for name in STREAMS.values()}
    handles = {name: path.open("wb") for name, path in files.items()}
    try:
        for record in records(StreamSpec(count=count, seed=seed, start=HISTORY_START)):
            handles[record.stream].write(record.value + b"\n")
    finally:
        for handle in handles.values():
            handle.close()
    labels = 0
    for name, path in files.items():
        stream = project.streams[name]
        groups = [g for g in project.groups.values() if g.stream.name == name]
        declared = [label for label in project.labels.values() if label.stream.name == name]
        report = backfill(settings, stream, groups, declared, [path])
        if declared:
            labels += report.events
    return labels


def train(settings: Settings, project: Project, model: str = "fraud-xgb",
          publish: Publish | None = None) -> TrainingResult:
    """One run of the model's training job; fails the test unless it was promoted."""
    result = run_model_job(settings, project, model, publish=publish)
    assert result.promoted, result.reasons
    return result


def with_trainer(project: Project, model: str, like: str) -> Project:
    """`project` with model `model` declared with the trainer and params of model `like`
    (the same name and view, another kind: what a user's edit of the declaration does)."""
    declared, other = project.models[model], project.models[like]
    changed = replace(declared, trainer=other.trainer, params=dict(other.params))
    return replace(project, models={**project.models, model: changed})


def champion_and_challenger(settings: Settings, project: Project, model: str = "fraud-xgb",
                            like: str = "fraud-mlp") -> tuple[int, int]:
    """Train `model` as declared (the champion), then as declared like `like` (another kind);
    point `challenger` at the second version and `champion` back at the first. Their
    versions."""
    first = train(settings, project, model).version
    second = run_model_job(settings, with_trainer(project, model, like), model).version
    registry = ModelRegistry(settings.registry_location)
    registry.set_alias(model, CHAMPION, first, reason="test: champion stays")
    registry.set_alias(model, CHALLENGER, second, reason="test: shadow it")
    assert registry.alias(model) == first and registry.alias(model, CHALLENGER) == second
    return first, second
