"""Inference throughput and latency against the limit measured in the same run.

- `raw_limit_events_per_s`: a bare consumer + `json.loads` + one batch `inplace_predict` per
  consumed batch, on the same topic and model.
- `fti_events_per_s`: the inference flow (validation, online lookup, feature vector, predict,
  produce) draining the same topic, after the feature flow filled the online store.
- `p50_ms` / `p99_ms`: event produced → prediction produced (Kafka timestamps), with the
  feature and inference flows running and a producer at half of `fti_events_per_s`.
- `swap_pause_ms`: the longest gap between consecutive predictions around a hot swap to a
  newly promoted model during that run, next to the median gap.

Prints one JSON line. Usage: fti bench inference --events 100000
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from bytewax.testing import run_main
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from fti.connectors.kafka.clients import ensure_topics, make_consumer, make_producer
from fti.connectors.offline.store import LanceOfflineStore
from fti.features.definitions import FEATURE_COLUMNS, FEATURES_TABLE
from fti.flows import features, inference
from fti.flows.champion import prepare_inference
from fti.infra.embedded_broker import EmbeddedBroker, free_port
from fti.models.jobs.trainer_service import RegistryEventPublisher
from fti.models.registry import CHAMPION, ModelRegistry
from fti.models.serving import MODEL_FILE
from fti.models.trainers.xgboost_model import load_model, predict_scores, save_model
from fti.settings import BrokerSettings, KafkaSettings, MetricsSettings, Settings, TopicSettings
from fti.synthetic.transactions import StreamSpec, generate


def register_model(settings: Settings, seed: int) -> int:
    """Train a small XGBoost model on random features and make it champion."""
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2000, len(FEATURE_COLUMNS))).astype(np.float32)
    y = (x[:, 0] + rng.normal(scale=0.5, size=2000) > 0).astype(np.float32)
    booster = xgb.train({"max_depth": 4, "seed": seed}, xgb.DMatrix(x, label=y), 100)
    source = Path(tempfile.mkdtemp())
    save_model(booster, source / MODEL_FILE)
    (source / "model_card.md").write_text("# benchmark model\n")
    registry = ModelRegistry(settings.registry_location)
    name = settings.inference.model_name
    version = registry.register(name, source, gates={"passed": True, "reasons": []},
                                promoted=True).version
    registry.set_alias(name, CHAMPION, version)
    return version


def produce(settings: Settings, spec: StreamSpec, rate: float = 0.0) -> int:
    """Produce the spec's valid transactions; return how many."""
    producer = make_producer(settings.kafka)
    sent, start = 0, time.monotonic()
    for record in generate(spec):
        if record.kind != "transaction" or record.bad:
            continue
        producer.produce(settings.topics.transactions, key=record.key, value=record.value)
        producer.poll(0)
        sent += 1
        if rate and sent % 20 == 0:
            ahead = start + sent / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    producer.flush(30)
    return sent


def raw_limit(settings: Settings, count: int) -> float:
    """Events/s of consume + decode + batch predict with the champion's booster."""
    registry = ModelRegistry(settings.registry_location)
    name = settings.inference.model_name
    booster = load_model(registry.artifact_path(name, registry.alias(name), MODEL_FILE))
    consumer = make_consumer(settings.kafka)
    consumer.assign([TopicPartition(settings.topics.transactions, 0, OFFSET_BEGINNING)])
    seen, start = 0, time.perf_counter()
    while seen < count:
        batch = [m for m in consumer.consume(1000, 1.0) if m.error() is None]
        rows = np.zeros((len(batch), len(FEATURE_COLUMNS)), dtype=np.float32)
        for i, msg in enumerate(batch):
            rows[i, 0] = json.loads(msg.value())["amount"]
        if batch:
            predict_scores(booster, rows)
        seen += len(batch)
    elapsed = time.perf_counter() - start
    consumer.close()
    return seen / elapsed


class PredictionCounter(threading.Thread):
    """Reads `predictions` from the start: count, and (tx_id, version, timestamp_ms)."""

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


def run_flow(flow: Any) -> tuple[threading.Thread, threading.Event]:
    """Start a flow built by `flow(stop)` in a thread."""
    stop = threading.Event()
    thread = threading.Thread(target=run_main, args=(flow(stop),), daemon=True)
    thread.start()
    return thread, stop


def wait(condition: Any, timeout_s: float = 300) -> None:
    """Poll until `condition()`; raise on time-out."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step timed out")
        time.sleep(0.02)


def latency_run(settings: Settings, rate: float, seconds: float) -> dict[str, float]:
    """Feature and inference services (processes, as deployed), a producer at `rate`, a swap
    half-way: latencies. Runs on fresh topics and data, so no backlog is in the way."""
    defaults = TopicSettings()
    names = ("transactions", "labels", "dlq", "retrain_requests", "registry_events", "predictions")
    topics = TopicSettings(**{name: getattr(defaults, name) + "-latency" for name in names})
    settings = settings.model_copy(
        update={"topics": topics, "data_dir": Path(tempfile.mkdtemp())}
    )
    ensure_topics(settings.kafka, settings.topics)
    register_model(settings, seed=1)
    env = {**os.environ, "FTI_DATA_DIR": str(settings.data_dir),
           "FTI_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
           "FTI_METRICS__FEATURES_PORT": "0", "FTI_METRICS__INFERENCE_PORT": "0",
           **{f"FTI_TOPICS__{name.upper()}": getattr(topics, name) for name in names}}
    services = [subprocess.Popen([sys.executable, "-m", "fti", "flow", name], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for name in ("features", "inference")]
    counter = PredictionCounter(settings)
    counter.start()
    try:
        # Warm-up: wait until the inference service answers before the measured stream.
        produce(settings, StreamSpec(count=50, seed=98))
        wait(lambda: len(counter.seen) >= 50, timeout_s=120)
        spec = StreamSpec(count=int(rate * seconds), seed=99)
        sender = threading.Thread(target=produce, args=(settings, spec, rate))
        sender.start()
        time.sleep(seconds / 2)
        version = register_model(settings, seed=2)
        RegistryEventPublisher(settings)(ModelRegistry(settings.registry_location).event(
            settings.inference.model_name, version, "promoted", CHAMPION))
        sender.join()
        wait(lambda: sum(1 for s in counter.seen if s[0].startswith("tx-99-")) >= spec.count)
    finally:
        for service in services:
            service.send_signal(signal.SIGTERM)
        for service in services:
            service.wait(30)
        counter.stopping.set()
    tx_times = _transaction_times(settings, "tx-99-")
    live = [(tx, v, ts) for tx, v, ts in counter.seen if tx.startswith("tx-99-")]
    latencies = np.array([ts - tx_times[tx] for tx, _, ts in live], dtype=float)
    return {"p50_ms": float(np.percentile(latencies, 50)),
            "p99_ms": float(np.percentile(latencies, 99)), **_swap_pause(live, version)}


def _transaction_times(settings: Settings, prefix: str) -> dict[str, int]:
    consumer = make_consumer(settings.kafka)
    consumer.assign([TopicPartition(settings.topics.transactions, 0, OFFSET_BEGINNING)])
    times, quiet = {}, time.monotonic()
    while time.monotonic() - quiet < 1.0:
        batch = [m for m in consumer.consume(1000, 0.1) if m.error() is None]
        if batch:
            quiet = time.monotonic()
        for msg in batch:
            tx_id = json.loads(msg.value())["id"]
            if tx_id.startswith(prefix):
                times[tx_id] = msg.timestamp()[1]
    consumer.close()
    return times


def _swap_pause(live: list[tuple[str, int, int]], version: int) -> dict[str, float]:
    stamps = [ts for _, _, ts in live]
    first_new = next(i for i, (_, v, _) in enumerate(live) if v == version)
    around = stamps[max(first_new - 200, 0): first_new + 200]
    gaps = np.diff(np.array(stamps, dtype=float))
    return {"swap_pause_ms": float(np.max(np.diff(np.array(around, dtype=float)))),
            "median_gap_ms": float(np.median(gaps))}


def main(events: int, latency_seconds: float = 10.0) -> dict[str, Any]:
    """Run every measurement on one fresh broker; return the figures."""
    with EmbeddedBroker(BrokerSettings(port=free_port())) as broker:
        settings = Settings(
            data_dir=Path(tempfile.mkdtemp()),
            kafka=KafkaSettings(bootstrap_servers=broker.bootstrap_servers),
            metrics=MetricsSettings(features_port=0, inference_port=0),
        )
        ensure_topics(settings.kafka, settings.topics)
        register_model(settings, seed=1)
        count = produce(settings, StreamSpec(count=events, seed=5))
        offline = LanceOfflineStore(settings.offline_location)
        thread, stop = run_flow(lambda s: features.get_flow(settings, s))
        wait(lambda: offline.count(FEATURES_TABLE) >= count)
        stop.set()
        thread.join(30)
        raw = raw_limit(settings, count)

        counter = PredictionCounter(settings)
        counter.start()
        stop = threading.Event()
        holder = prepare_inference(settings, stop)
        start = time.perf_counter()
        thread = threading.Thread(
            target=run_main, args=(inference.get_flow(settings, holder, stop),), daemon=True
        )
        thread.start()
        wait(lambda: len(counter.seen) >= count)
        fti_rate = count / (time.perf_counter() - start)
        stop.set()
        counter.stopping.set()
        thread.join(30)
        latency = latency_run(settings, rate=fti_rate / 2, seconds=latency_seconds)
    return {
        "events": count,
        "raw_limit_events_per_s": round(raw),
        "fti_events_per_s": round(fti_rate),
        "ratio": round(fti_rate / raw, 3),
        "latency_rate_events_per_s": round(fti_rate / 2),
        **{k: round(v, 1) for k, v in latency.items()},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100000)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(json.dumps(main(args.events, args.latency_seconds)))
