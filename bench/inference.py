"""Inference throughput and latency of a project's served model against the limit measured in
the same run.

Set-up, on a fresh embedded broker: the first `--history` events of the project's scenario
(`--project DIR`) and their labels are backfilled into the offline tables and the online state
(as `fti backfill` does) and the model (`--model NAME`, default the first declared with
`serve=True`) is trained on them by its own training job (as `fti train` does) and is the
champion; the scenario's next `--events` events of the stream the model scores are produced to
the stream's topic.

- `raw_limit_events_per_s`: a bare consumer + `json.loads` + one batch predict per consumed
  batch with the champion's loaded model (each event's numeric fields as its inputs, no
  features), on the same topic.
- `fti_events_per_s`: the project's inference flow (`fti.flows.inference`: decode and validate,
  one online lookup per group, the features as the feature engine computes them, predict,
  produce) draining the same topic, from its start, the online state as the backfill left it:
  every event is new to it, as when inference keeps up with the feature engine.
- `fti_replay_events_per_s`: the same after `fti materialize` added the events to the stores:
  inference replaying events the state already holds, most of them older than its allowed
  lateness (scored from a copy of the state).
- `p50_ms` / `p99_ms`: event produced -> prediction produced (Kafka timestamps) with
  `fti flow materialize` and `fti flow inference` running as processes (as deployed) on another
  fresh broker and a copy of the trained stores, and a producer at half `fti_events_per_s` for
  `--latency-seconds` (0: no latency run).
- `swap_pause_ms`: the longest gap between consecutive predictions around a hot swap, half-way
  through that run, to a second version trained in the set-up; next to the median gap.

Prints one JSON line. Usage: fti bench inference --project DIR --events 20000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from bytewax.testing import run_main
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from fti.bench.projects import (
    BenchProject,
    Produced,
    add_model_option,
    add_project_option,
    backfill_records,
    event_id,
    open_project,
    prepare_broker,
    produce,
    split_at,
    train_champion,
)
from fti.connectors.kafka.clients import make_consumer
from fti.connectors.offline.store import LanceOfflineStore
from fti.features.project.fields import Stream
from fti.features.project.model import Model
from fti.flows import inference, materialize
from fti.infra.embedded_broker import EmbeddedBroker, free_port
from fti.models.jobs.trainer_service import RegistryEventPublisher
from fti.models.registry import CHAMPION, ModelRegistry
from fti.models.serving import ServingModel, load_serving_model
from fti.settings import BrokerSettings, KafkaSettings, MetricsSettings, Settings

#: Events produced before the latency run's measured ones, to wait for the services.
WARM_UP = 50
NUMERIC = ("float", "int")


def bench_settings(data_dir: Path, bootstrap_servers: str) -> Settings:
    """Settings of one run: its data directory and broker, metrics on free ports."""
    return Settings(data_dir=data_dir, kafka=KafkaSettings(bootstrap_servers=bootstrap_servers),
                    metrics=MetricsSettings(features_port=0, inference_port=0))


def raw_limit(settings: Settings, stream: Stream, count: int, served: ServingModel) -> float:
    """Events/s of consume + decode + batch predict with the champion's loaded model."""
    numeric = [f.name for f in stream.fields if f.type in NUMERIC][: len(served.features)]
    consumer = make_consumer(settings.kafka)
    consumer.assign([TopicPartition(stream.topic, 0, OFFSET_BEGINNING)])
    seen, start = 0, time.perf_counter()
    while seen < count:
        batch = [m for m in consumer.consume(1000, 1.0) if m.error() is None]
        rows = np.zeros((len(batch), len(served.features)), dtype=np.float32)
        for i, msg in enumerate(batch):
            value = json.loads(msg.value())
            for j, name in enumerate(numeric):
                x = value.get(name)
                if isinstance(x, int | float) and not isinstance(x, bool):
                    rows[i, j] = x
        if batch:
            served.model.predict(rows)
        seen += len(batch)
    elapsed = time.perf_counter() - start
    consumer.close()
    return seen / elapsed


class PredictionCounter(threading.Thread):
    """Reads `predictions` from the start: (event id, version, timestamp_ms) of each."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings, self.seen = settings, []
        self.stopping = threading.Event()

    def run(self) -> None:
        consumer = make_consumer(self.settings.kafka)
        consumer.assign([TopicPartition(self.settings.topics.predictions, 0, OFFSET_BEGINNING)])
        while not self.stopping.is_set():
            for msg in consumer.consume(1000, 0.1):
                if msg.error() is None:
                    value = json.loads(msg.value())
                    self.seen.append((value["id"], value["version"], msg.timestamp()[1]))
        consumer.close()


def wait(condition: Callable[[], bool], what: str, timeout_s: float = 300) -> None:
    """Poll until `condition()`; raise on time-out."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"benchmark step timed out: {what}")
        time.sleep(0.02)


def materialized(settings: Settings, bench: BenchProject, stream: Stream, count: int) -> None:
    """Run `fti materialize` until each group of `stream` holds `count` more rows."""
    offline = LanceOfflineStore(settings.offline_location)
    tables = [g.table_name for g in bench.project.groups.values() if g.stream.name == stream.name]
    wanted = {t: offline.count(t) + count for t in tables}
    stop = threading.Event()
    thread = threading.Thread(target=run_main, daemon=True,
                              args=(materialize.get_flow(settings, bench.project, stop),))
    thread.start()
    wait(lambda: all(offline.count(t) >= n for t, n in wanted.items()), "materialize")
    stop.set()
    thread.join(30)


def flow_rate(settings: Settings, bench: BenchProject, model: Model, count: int,
              before: int = 0) -> float:
    """Events/s of the inference flow until it predicted `count` events (the predictions
    topic holds `before` from an earlier run)."""
    counter = PredictionCounter(settings)
    counter.start()
    stop = threading.Event()
    champions = inference.prepare(settings, bench.project, [model.name], stop)
    assert champions is not None
    flow = inference.get_flow(settings, bench.project, champions, stop, shadow=False)
    start = time.perf_counter()
    thread = threading.Thread(target=run_main, args=(flow,), daemon=True)
    thread.start()
    wait(lambda: len(counter.seen) >= before + count, "inference flow")
    rate = count / (time.perf_counter() - start)
    stop.set()
    counter.stopping.set()
    thread.join(30)
    return rate


def latency_run(bench: BenchProject, model: Model, stream: Stream, trained: Path,
                versions: tuple[int, int], rate: float, seconds: float, history: int,
                seed: int) -> dict[str, float | None]:
    """The feature engine and inference as processes on a fresh broker and a copy of the
    trained stores, a producer at `rate`, a swap to `versions[1]` half-way: latencies."""
    with EmbeddedBroker(BrokerSettings(port=free_port())) as broker:
        data_dir = Path(tempfile.mkdtemp(prefix="fti-bench-latency-")) / "data"
        shutil.copytree(trained, data_dir)
        settings = bench_settings(data_dir, broker.bootstrap_servers)
        prepare_broker(settings, bench.project)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FTI_")} | {
            "FTI_DATA_DIR": str(data_dir),
            "FTI_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "FTI_METRICS__FEATURES_PORT": "0", "FTI_METRICS__INFERENCE_PORT": "0",
        }
        where = ["--project", str(bench.directory.resolve())]
        commands = [["materialize", *where], ["inference", *where, "--model", model.name]]
        services = [subprocess.Popen([sys.executable, "-m", "fti", "flow", *command], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    for command in commands]
        counter = PredictionCounter(settings)
        counter.start()
        measured = max(int(rate * seconds), 1)
        _, live = split_at(bench.records(history + WARM_UP + measured, 0.0, seed), stream.name,
                           history)
        topics = bench.topics()
        try:
            # Warm-up: wait until the inference service answers before the measured stream.
            produce(settings, live[:WARM_UP], topics, stream.name)
            wait(lambda: len(counter.seen) >= WARM_UP, "the services' first predictions", 180)
            sent = Produced()
            sender = threading.Thread(target=produce, args=(
                settings, live[WARM_UP:], topics, stream.name, rate),
                kwargs={"id_field": stream.id, "produced": sent})
            sender.start()
            time.sleep(seconds / 2)
            registry = ModelRegistry(settings.registry_location)
            registry.set_alias(model.name, CHAMPION, versions[1], reason="benchmark: hot swap")
            RegistryEventPublisher(settings)(registry.event(model.name, versions[1], "promoted",
                                                            CHAMPION))
            sender.join()
            ids = set(sent.ids)
            wait(lambda: sum(1 for s in counter.seen if s[0] in ids) >= len(ids),
                 "the measured predictions")
        finally:
            for service in services:
                service.send_signal(signal.SIGTERM)
            for service in services:
                service.wait(30)
            counter.stopping.set()
        produced_at = _event_times(settings, stream, ids)
    live_seen = [(i, v, ts) for i, v, ts in counter.seen if i in ids]
    latencies = np.array([ts - produced_at[i] for i, _, ts in live_seen], dtype=float)
    return {"p50_ms": float(np.percentile(latencies, 50)),
            "p99_ms": float(np.percentile(latencies, 99)), **_swap_pause(live_seen, versions[1])}


def _event_times(settings: Settings, stream: Stream, ids: set[str]) -> dict[str, int]:
    """Kafka timestamp of each event of `ids` in the stream's topic."""
    consumer = make_consumer(settings.kafka)
    consumer.assign([TopicPartition(stream.topic, 0, OFFSET_BEGINNING)])
    times: dict[str, int] = {}
    quiet = time.monotonic()
    while time.monotonic() - quiet < 1.0 and len(times) < len(ids):
        batch = [m for m in consumer.consume(1000, 0.1) if m.error() is None]
        if batch:
            quiet = time.monotonic()
        for msg in batch:
            found = event_id(msg.value(), stream.id)
            if found in ids:
                times[found] = msg.timestamp()[1]
    consumer.close()
    return times


def _swap_pause(live: list[tuple[str, int, int]], version: int) -> dict[str, float | None]:
    stamps = [ts for _, _, ts in live]
    gaps = np.diff(np.array(stamps, dtype=float))
    first_new = next((i for i, (_, v, _) in enumerate(live) if v == version), None)
    if first_new is None:  # the swap came after the last measured event
        return {"swap_pause_ms": None, "median_gap_ms": float(np.median(gaps))}
    around = stamps[max(first_new - 200, 0): first_new + 200]
    return {"swap_pause_ms": float(np.max(np.diff(np.array(around, dtype=float)))),
            "median_gap_ms": float(np.median(gaps))}


def main(project_dir: Path | None, events: int = 100_000, model_name: str | None = None,
         history: int = 4000, latency_seconds: float = 10.0, seed: int = 7) -> dict[str, Any]:
    """Run every measurement; return the figures."""
    bench = open_project(project_dir)
    model = bench.model(model_name)
    stream = bench.events_stream(model)
    work = Path(tempfile.mkdtemp(prefix="fti-bench-inference-"))
    with EmbeddedBroker(BrokerSettings(port=free_port())) as broker:
        settings = bench_settings(work / "data", broker.bootstrap_servers)
        prepare_broker(settings, bench.project)
        early, live = split_at(bench.records(history + events, 0.0, seed), stream.name, history)
        backfill_records(settings, bench.project, early, work / "history")
        first, passed = train_champion(settings, bench.project, model.name)
        versions = (first, first)
        if latency_seconds > 0:
            from fti.models.jobs.model_job import run_model_job

            # The version swapped to in the latency run; the first stays champion till then.
            second = run_model_job(settings, bench.project, model.name).version
            ModelRegistry(settings.registry_location).set_alias(
                model.name, CHAMPION, first, reason="benchmark: swapped to later")
            versions = (first, second)
            shutil.copytree(settings.data_dir, work / "trained")
        count = produce(settings, live, bench.topics(), stream.name).events
        registry = ModelRegistry(settings.registry_location)
        raw = raw_limit(settings, stream, count, load_serving_model(registry, model.name, first))
        fti_rate = flow_rate(settings, bench, model, count)
        materialized(settings, bench, stream, count)
        replay_rate = flow_rate(settings, bench, model, count, before=count)
    latency: dict[str, float | None] = {}
    if latency_seconds > 0:
        latency = latency_run(bench, model, stream, work / "trained", versions, fti_rate / 2,
                              latency_seconds, history, seed)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "model": model.name,
        "champion_passed_gates": passed,
        "history": history,
        "events": count,
        "raw_limit_events_per_s": round(raw),
        "fti_events_per_s": round(fti_rate),
        "ratio": round(fti_rate / raw, 3),
        "fti_replay_events_per_s": round(replay_rate),
        **({"latency_rate_events_per_s": round(fti_rate / 2)} if latency else {}),
        **{k: None if v is None else round(v, 1) for k, v in latency.items()},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_project_option(parser)
    add_model_option(parser)
    parser.add_argument("--events", type=int, default=100_000, help="events to score")
    parser.add_argument("--history", type=int, default=4000,
                        help="events (and their labels) backfilled to train the champion")
    parser.add_argument("--latency-seconds", type=float, default=10.0,
                        help="length of the latency run (0: none)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(main(args.project, args.events, args.model, args.history,
                          args.latency_seconds, args.seed)))
