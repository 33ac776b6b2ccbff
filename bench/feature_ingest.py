"""Feature-engine throughput against the limit measured in the same run.

The project (`--project DIR`) and its scenario: the scenario's events of one stream (the
stream its first served model scores, else the first stream feeding a group), `--bad-fraction`
of them invalid, are produced to the stream's topic on a fresh embedded broker.
`raw_events_per_s`: a bare confluent-kafka consumer plus `json.loads` of that topic.
`pipeline_events_per_s`: `fti materialize` (`fti.flows.materialize`, one Bytewax worker, its
start-up included) until the offline table of every group of the stream holds every valid
event and the stream's DLQ every invalid one. Prints one JSON line.
Usage: fti bench feature-ingest --project DIR --events 200000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

from bytewax.testing import run_main
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from fti.bench.projects import add_project_option, open_project, prepare_broker, produce
from fti.connectors.kafka.clients import make_consumer
from fti.connectors.offline.store import LanceOfflineStore
from fti.features.project.declare import FeatureGroup
from fti.features.project.loader import Project
from fti.flows import materialize
from fti.infra.embedded_broker import EmbeddedBroker, free_port
from fti.settings import BrokerSettings, KafkaSettings, MetricsSettings, Settings


def raw_rate(settings: Settings, topic: str, count: int) -> float:
    """Events/s of a bare consumer decoding JSON, reading `count` records of `topic`."""
    consumer = make_consumer(settings.kafka)
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    seen, start = 0, time.perf_counter()
    while seen < count:
        for msg in consumer.consume(1000, 1.0):
            if msg.error() is None:
                try:
                    json.loads(msg.value())
                except (ValueError, RecursionError):  # poison: invalid, deep nesting
                    pass
                seen += 1
    elapsed = time.perf_counter() - start
    consumer.close()
    return seen / elapsed


class _TopicCounter:
    """Counts the messages on partition 0 of a topic, without blocking."""

    def __init__(self, settings: Settings, topic: str | None) -> None:
        self._consumer = None
        if topic:
            self._consumer = make_consumer(settings.kafka)
            self._consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        self.seen = 0

    def poll(self) -> int:
        if self._consumer is not None:
            self.seen += sum(m.error() is None for m in self._consumer.consume(1000, 0))
        return self.seen

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()


def pipeline_rate(settings: Settings, project: Project, groups: list[FeatureGroup],
                  dlq_topic: str | None, count: int, bad: int
                  ) -> tuple[float, dict[str, int], int]:
    """Events/s of `fti materialize` on `project` until each group's offline table holds
    every valid event and the DLQ every invalid one (or, should the engine judge an event
    otherwise than the scenario, until rows and DLQ together hold every event); the rate,
    the rows per table and the DLQ messages."""
    stop = threading.Event()
    offline = LanceOfflineStore(settings.offline_location)
    dlq = _TopicCounter(settings, dlq_topic)
    wanted_bad = bad if dlq_topic else 0
    thread = threading.Thread(target=run_main,
                              args=(materialize.get_flow(settings, project, stop),))
    start = time.perf_counter()
    thread.start()
    rows = {g.table_name: 0 for g in groups}
    dead = 0
    while True:
        fewest = min(rows.values())
        if fewest >= count - bad and dead >= wanted_bad:
            break
        if dlq_topic and fewest + dead >= count:
            break
        if not thread.is_alive():
            raise RuntimeError("the materialize flow stopped before it was done")
        time.sleep(0.05)
        rows = {g.table_name: offline.count(g.table_name) for g in groups}
        dead = dlq.poll()
    elapsed = time.perf_counter() - start
    stop.set()
    thread.join()
    dlq.close()
    return count / elapsed, rows, dead


def main(events: int, project_dir: Path | None, bad_fraction: float = 0.01, seed: int = 7
         ) -> dict[str, object]:
    """Produce the scenario's events, run both measurements on one fresh broker; the figures."""
    bench = open_project(project_dir)
    stream = bench.events_stream()
    groups = sorted((g for g in bench.project.groups.values() if g.stream.name == stream.name),
                    key=lambda g: g.name)
    if not groups:
        raise SystemExit(f"--project {project_dir}: stream {stream.name} feeds no feature group")
    with EmbeddedBroker(BrokerSettings(port=free_port())) as broker:
        settings = Settings(
            data_dir=Path(tempfile.mkdtemp(prefix="fti-bench-ingest-")),
            kafka=KafkaSettings(bootstrap_servers=broker.bootstrap_servers),
            metrics=MetricsSettings(features_port=0),
        )
        prepare_broker(settings, bench.project)
        # Only this stream's records: both sides read the very same messages.
        sent = produce(settings, bench.records(events, bad_fraction, seed), bench.topics(),
                       stream.name)
        raw = raw_rate(settings, stream.topic, sent.events)
        pipeline, rows, dead = pipeline_rate(settings, bench.project, groups, stream.dlq_topic,
                                             sent.events, sent.bad)
    return {
        "events": sent.events,
        "bad": sent.bad,
        "raw_events_per_s": round(raw),
        "pipeline_events_per_s": round(pipeline),
        "ratio": round(pipeline / raw, 3),
        "stream": stream.name,
        "offline_rows": rows,
        "dlq": dead,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_project_option(parser)
    parser.add_argument("--events", type=int, default=50000)
    parser.add_argument("--bad-fraction", type=float, default=0.01,
                        help="share of invalid events (the scenario decides their kinds)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(main(args.events, args.project, args.bad_fraction, args.seed)))
