"""`fti demo`: the whole loop of a user project on the embedded default, from an empty data
directory (`make demo` runs the example in `examples/`).

Applies the project's definitions, starts the broker and the project's services (feature
engine, monitor, inference flows; trainer) as processes, produces the project's scenario
(`scenario.py`: a stream with drift and a little bad input, and late labels), waits until a
model trained because of the drift is champion and scoring, stops everything, and prints a
summary whose last line is JSON.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fti.connectors.kafka.clients import ensure_topic_names, ensure_topics
from fti.connectors.offline.store import LanceOfflineStore
from fti.connectors.online import open_online_store
from fti.errors import ConfigError
from fti.features.project.applied import apply
from fti.features.project.loader import Project, load_project
from fti.features.project.model import Model
from fti.features.project.tables import label_table
from fti.infra.embedded_broker import EmbeddedBroker, free_port
from fti.models.registry import ModelRegistry
from fti.ops.demo_watch import LoopState, LoopWatcher
from fti.ops.producer import ScenarioProducer
from fti.ops.scenario import Scenario, load_scenario
from fti.ops.up import project_service_specs
from fti.settings import Settings, settings_in

log = logging.getLogger(__name__)

#: The demo's scenario, applied unless the user set the same variable.
SCENARIO_ENV = {
    "FTI_MONITOR__BOOTSTRAP_LABELS": "1500",
    "FTI_MONITOR__VOLUME_LABELS": "1000000",
    "FTI_MONITOR__DRIFT_MIN_LABELS": "800",
    "FTI_MONITOR__COOLDOWN_S": "10",
    "FTI_TRAINING__WINDOW_LABELS": "5000",
}
CHUNK = 250
TAIL_EVENTS = 1000


@dataclass(frozen=True)
class DemoOptions:
    """Size and pace of the demo stream."""

    events: int = 150000
    rate: float = 1500.0
    drift_at: int = 8000
    bad_fraction: float = 0.01
    seed: int = 7
    timeout_s: float = 280.0
    project: Path = Path(".")


class Services:
    """The demo's service processes, each logging to `<data_dir>/logs/<name>.log`."""

    def __init__(self, env: dict[str, str], log_dir: Path,
                 commands: dict[str, tuple[str, ...]]) -> None:
        self.env, self.log_dir, self.commands = env, log_dir, commands
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        """Start every service."""
        for name, argv in self.commands.items():
            out = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed by the child
            self.processes[name] = subprocess.Popen(
                list(argv), env=self.env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def check(self) -> None:
        """Raise if a service died."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"service {name} exited with {process.returncode}:\n{tail}")

    def stop(self, timeout_s: float = 30.0) -> dict[str, int | None]:
        """SIGTERM every service, wait for graceful exit, then kill; return exit codes."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        codes: dict[str, int | None] = {}
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = None
        return codes


def _fresh_data_dir(settings: Settings) -> Path:
    data_dir = settings.data_dir
    for part in ("online.db", "online.db-wal", "online.db-shm", "offline", "registry",
                 "datasets", "definitions", "logs"):
        path = data_dir / part
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    # The demo's broker starts empty: earlier recovery snapshots would skip its records.
    shutil.rmtree(settings.service_recovery_dir, ignore_errors=True)
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    return data_dir


def _service_env(settings: Settings, bootstrap: str) -> dict[str, str]:
    env = {**SCENARIO_ENV, **os.environ}
    env.update({
        "FTI_DATA_DIR": str(settings.data_dir.resolve()),
        "FTI_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "FTI_RECOVERY__DIR": str(settings.service_recovery_dir.resolve()),
        "PYTHONUNBUFFERED": "1",
    })
    return env


@dataclass(frozen=True)
class DemoProject:
    """The project the demo runs: its definitions, the served model, its scenario."""

    project: Project
    model: Model
    scenario: Scenario

    @classmethod
    def load(cls, directory: Path, settings: Settings) -> DemoProject:
        """Load the project in `directory` and pick the model the demo follows: the one
        `training.model_name` names, else the project's only served model."""
        project = load_project(directory)
        served = sorted(n for n, m in project.models.items() if m.serve)
        name = settings.training.model_name if settings.training.model_name in served else (
            served[0] if len(served) == 1 else None)
        if name is None:
            raise ConfigError(f"the project in {directory} serves {served or 'no models'}; the "
                              "demo follows one: set FTI_TRAINING__MODEL_NAME to its name")
        return cls(project, project.models[name], load_scenario(directory))

    @property
    def events_stream(self) -> str:
        """The stream the model scores (its view's groups' stream)."""
        return self.model.view.groups[0].stream.name

    @property
    def feature_table(self) -> str:
        """An offline table with one row per valid scored event: the view's first group's."""
        return self.model.view.groups[0].table_name

    @property
    def label_table(self) -> str:
        """The offline table of the model's label stream."""
        return label_table(self.model.view.label)

    def dlq_topic(self) -> str:
        """Where the scored stream's invalid events go."""
        return self.project.streams[self.events_stream].dlq_topic or ""


def _drive(
    s: Settings, demo: DemoProject, options: DemoOptions, services: Services,
    watcher: LoopWatcher, producer: ScenarioProducer, deadline: float,
) -> bool:
    """Produce until the loop closes (then a short tail); False on time-out."""
    registry = ModelRegistry(s.registry_location)
    tail_left: int | None = None
    while time.time() < deadline:
        services.check()
        with watcher.lock:
            closed = watcher.state.loop_closed()
            scoring = sum(watcher.state.predictions_by_version.values()) > 0
        at_drift = producer.counts.events >= options.drift_at
        # The world changes only once the first model is serving: the demo then shows the
        # detector seeing a model's error rate rise, not a cold start.
        serving = scoring and registry.alias(demo.model.name) is not None
        waiting_for_first_model = at_drift and not serving
        if closed and tail_left is None:
            log.info("loop closed: a drift-triggered model is champion and scoring")
            tail_left = TAIL_EVENTS
        if tail_left is not None and (tail_left <= 0 or producer.exhausted):
            return True
        if producer.exhausted or waiting_for_first_model:
            time.sleep(0.2)
            continue
        room = options.drift_at - producer.counts.events
        chunk = min(CHUNK, room) if room > 0 else CHUNK
        sent = producer.send(chunk, rate=options.rate)
        if tail_left is not None:
            tail_left -= sent
    return False


def _stores_caught_up(s: Settings, demo: DemoProject, producer: ScenarioProducer,
                      watcher: LoopWatcher) -> bool:
    offline = LanceOfflineStore(s.offline_location)
    produced = producer.counts.events
    valid = produced - producer.counts.bad_events
    with watcher.lock:
        dlq = watcher.state.dlq_by_topic[demo.project.streams[demo.events_stream].topic]
        predicted = sum(watcher.state.predictions_by_version.values())
    return (
        offline.count(demo.feature_table) + dlq >= produced
        and offline.count(demo.label_table) >= producer.counts.labels
        and predicted >= valid
    )


def _wait_until(condition: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return False


def _summary(s: Settings, demo: DemoProject, producer: ScenarioProducer, state: LoopState,
             started: float) -> dict[str, Any]:
    registry = ModelRegistry(s.registry_location)
    model, metric = demo.model.name, demo.model.primary_metric()
    offline = LanceOfflineStore(s.offline_location)
    drift = state.first_drift_request()
    new_version = state.promoted_after_drift()
    first_drifted = producer.counts.first_drifted_at
    deploy = state.first_prediction_at.get(new_version) if new_version else None
    detected = drift["evidence"].get("detected_at_event") if drift else None
    index_of = demo.scenario.index_of
    return {
        "project": str(demo.project.directory),
        "model": model,
        "events_produced": producer.counts.events,
        "dlq_events": state.dlq_by_topic[demo.project.streams[demo.events_stream].topic],
        "online_entities": open_online_store(s).count(),
        "offline_feature_rows": offline.count(demo.feature_table),
        "label_rows": offline.count(demo.label_table),
        "models": [
            {"version": v.version, "metric": metric, "value": v.metrics.get(metric),
             "promoted": v.promoted}
            for v in registry.versions(model)
        ],
        "champion_version": registry.alias(model),
        "predictions": sum(state.predictions_by_version.values()),
        "predictions_by_version": {
            str(k): v for k, v in sorted(state.predictions_by_version.items())
        },
        "drift_detected_at_event": (
            index_of(detected) if detected and index_of else detected),
        "drift_to_deploy_seconds": (
            round(deploy - first_drifted, 2) if deploy and first_drifted else None
        ),
        "wall_seconds": round(time.time() - started, 1),
    }


def _print_summary(summary: dict[str, Any], closed: bool, data_dir: Path, drift_at: int) -> None:
    models = ", ".join(
        f"v{m['version']} ({m['metric']} {m['value']:.3f}, "
        f"{'promoted' if m['promoted'] else 'rejected'})"
        for m in summary["models"]
    )
    by_version = ", ".join(f"v{k}: {n}" for k, n in summary["predictions_by_version"].items())
    print(f"""
fti demo — {'the loop closed' if closed else 'the loop did NOT close'} in {summary['wall_seconds']}s
  project              {summary['project']} (model {summary['model']})
  events produced      {summary['events_produced']} (drift injected at event {drift_at})
  dead-letter queue    {summary['dlq_events']}
  offline feature rows {summary['offline_feature_rows']}, labels {summary['label_rows']}
  online entities      {summary['online_entities']}
  models               {models or 'none'}
  champion             v{summary['champion_version']}
  predictions          {summary['predictions']} ({by_version})
  drift detected at    event {summary['drift_detected_at_event']}
  drift → deploy       {summary['drift_to_deploy_seconds']}s
  explore              fti registry list; FTI_DATA_DIR={data_dir} (stores, registry, logs)
""")
    print(json.dumps(summary))


def run_demo(settings: Settings, options: DemoOptions) -> int:
    """Run the demo; return 0 only if the loop closed, the stores caught up with the producer
    and every service stopped cleanly."""
    # SIGTERM unwinds like Ctrl-C, so the services and the broker are stopped, not orphaned.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.time()
    demo = DemoProject.load(options.project, settings)
    data_dir = _fresh_data_dir(settings)
    apply(demo.project, data_dir)
    port = free_port() if settings.broker.port == 9092 else settings.broker.port
    broker = EmbeddedBroker(
        settings.broker.model_copy(update={"port": port}),
        log_file=data_dir / "logs" / "broker.log",
    )
    with broker:
        env = _service_env(settings, broker.bootstrap_servers)
        s = settings_in(env)  # what the services see
        ensure_topics(s.kafka, s.topics)
        ensure_topic_names(s.kafka, demo.project.topics(), s.topics.partitions)
        online = open_online_store(s)
        if hasattr(online, "clear"):
            online.clear()  # a Redis store outlives the demo's data directory
        watcher = LoopWatcher(s, dlq_topics=[t for t in {demo.dlq_topic()} if t],
                              model=demo.model.name)
        watcher.start()
        commands = {spec.name: spec.argv for spec in project_service_specs(s, options.project)}
        services = Services(env, data_dir / "logs", commands)
        services.start()
        log.info("broker on %s, services started, logs in %s", broker.bootstrap_servers,
                 data_dir / "logs")
        topics = {name: stream.topic for name, stream in demo.project.streams.items()}
        records = demo.scenario.generate(options.events, options.drift_at,
                                         options.bad_fraction, options.seed)
        producer = ScenarioProducer(s, records, topics, demo.events_stream, options.events)
        try:
            closed = _drive(s, demo, options, services, watcher, producer,
                            started + options.timeout_s)
            caught_up = _wait_until(lambda: _stores_caught_up(s, demo, producer, watcher), 60)
            if not caught_up:
                log.warning("stores and predictions did not catch up with the producer in 60s")
        finally:
            codes = services.stop()
            watcher.stop()
        log.info("services stopped: %s", codes)
        summary = _summary(s, demo, producer, watcher.state, started)
    clean = all(code == 0 for code in codes.values())
    if not clean:
        log.error("not every service stopped cleanly: %s (logs in %s)", codes, data_dir / "logs")
    _print_summary(summary, closed, data_dir, options.drift_at)
    return 0 if closed and caught_up and clean else 1
