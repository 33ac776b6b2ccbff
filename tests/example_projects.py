"""The example projects as tests use them: a copy in the test's directory whose topics carry a
suffix of their own (tests share one broker), applied, with the example's scenario."""

from __future__ import annotations

import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from fti.connectors.kafka.clients import ensure_topic_names
from fti.features.project.applied import apply
from fti.features.project.loader import Project, load_project
from fti.ops.producer import ScenarioProducer
from fti.ops.scenario import SCENARIO_FILE, Scenario, load_scenario
from fti.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@dataclass(frozen=True)
class ExampleProject:
    """A copied, applied example project and the topics it was given."""

    directory: Path
    project: Project
    scenario: Scenario | None  # None: the example ships no scenario.py
    topics: dict[str, str]  # stream name -> topic

    def producer(self, settings: Settings, count: int, drift_at: int | None = None,
                 bad_fraction: float = 0.0, seed: int = 7, stream: str | None = None
                 ) -> ScenarioProducer:
        """A producer of the example's scenario; `counts.events` counts the events of
        `stream` (default: the stream of the first model's view)."""
        if self.scenario is None:
            raise AssertionError(f"{self.directory} has no {SCENARIO_FILE} to produce")
        if stream is None:
            model = next(iter(self.project.models.values()))
            stream = model.view.groups[0].stream.name
        records = self.scenario.generate(count, drift_at if drift_at is not None else count + 1,
                                         bad_fraction, seed)
        return ScenarioProducer(settings, records, self.topics, stream, count)

    def dlq_topic(self, stream: str) -> str:
        """The dead-letter topic of `stream`."""
        return self.project.streams[stream].dlq_topic or ""


def example_project(name: str, settings: Settings, directory: Path,
                    suffix: str | None = None) -> ExampleProject:
    """Copy `examples/<name>` into `directory`, suffix every topic it names, create the
    topics, apply the definitions to `settings.data_dir`."""
    suffix = suffix or uuid.uuid4().hex[:8]
    shutil.copytree(EXAMPLES / name, directory, ignore=shutil.ignore_patterns("__pycache__"))
    definitions = directory / "definitions.py"
    text = definitions.read_text()
    text = re.sub(r'((?:topic|dlq_topic)=")([^"]+)(")', rf"\g<1>\g<2>-{suffix}\g<3>", text)
    definitions.write_text(text)
    project = load_project(directory)
    ensure_topic_names(settings.kafka, project.topics())
    apply(project, settings.data_dir)
    topics = {name: stream.topic for name, stream in project.streams.items()}
    scenario = load_scenario(directory) if (directory / SCENARIO_FILE).is_file() else None
    return ExampleProject(directory, project, scenario, topics)


def scenario_module(name: str) -> ModuleType:
    """`examples/<name>/scenario.py` as a module (imported once), for tests that use more of
    it than `generate`: the fraud example's `StreamSpec` and `records`, say."""
    if name not in _SCENARIO_MODULES:
        module = load_scenario(EXAMPLES / name).module
        assert module is not None
        _SCENARIO_MODULES[name] = module
    return _SCENARIO_MODULES[name]


_SCENARIO_MODULES: dict[str, ModuleType] = {}
