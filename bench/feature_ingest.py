"""Feature-flow throughput against the limit measured in the same run.

`raw_events_per_s`: a bare confluent-kafka consumer plus JSON decode of the same topic on the
same broker. `pipeline_events_per_s`: the feature engine until every valid transaction is in
the offline store: `--engine generic` (default) is `fti materialize` (`fti.flows.materialize`)
on the fraud example project (`examples/fraud`, or `--project DIR`), done when the group's
table `card_activity_v1` holds every valid transaction and the stream's DLQ every invalid one;
`--engine builtin` is the built-in fraud feature flow (`fti.flows.features`: validation,
windows, SQLite and LanceDB writes). Prints one JSON line.
Usage: fti bench feature-ingest --events 200000 [--engine generic|builtin]
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

from fti.connectors.kafka.clients import (
    ensure_topic_names,
    ensure_topics,
    make_consumer,
    make_producer,
)
from fti.connectors.offline.store import LanceOfflineStore
from fti.features.definitions import FEATURES_TABLE
from fti.features.project.loader import Project, load_project
from fti.flows import features, materialize
from fti.infra.embedded_broker import EmbeddedBroker, free_port
from fti.settings import BrokerSettings, KafkaSettings, MetricsSettings, Settings
from fti.synthetic.transactions import StreamSpec, generate

ENGINES = ("generic", "builtin")
#: The fraud example project (bench/ sits at the repository root beside examples/).
FRAUD_PROJECT = Path(__file__).resolve().parents[1] / "examples" / "fraud"
#: The example's group that the transactions feed; its offline table is `card_activity_v1`.
FRAUD_GROUP = "card_activity"


def produce_transactions(settings: Settings, spec: StreamSpec) -> int:
    """Produce the spec's transactions only (both sides read the same topic); return the
    number of bad ones."""
    producer = make_producer(settings.kafka)
    bad = 0
    for record in generate(spec):
        if record.kind == "transaction":
            producer.produce(settings.topics.transactions, key=record.key, value=record.value)
            producer.poll(0)
            bad += record.bad
    producer.flush(30)
    return bad


def raw_rate(settings: Settings, count: int) -> float:
    """Events/s of a bare consumer decoding JSON, reading `count` transactions."""
    consumer = make_consumer(settings.kafka)
    consumer.assign([TopicPartition(settings.topics.transactions, 0, OFFSET_BEGINNING)])
    seen, start = 0, time.perf_counter()
    while seen < count:
        for msg in consumer.consume(1000, 1.0):
            if msg.error() is None:
                try:
                    json.loads(msg.value())
                except (ValueError, RecursionError):  # poison: invalid, 5,000-deep nesting
                    pass
                seen += 1
    elapsed = time.perf_counter() - start
    consumer.close()
    return seen / elapsed


def pipeline_rate(settings: Settings, count: int, bad: int) -> float:
    """Events/s of the built-in feature flow until every valid transaction is in the offline
    store."""
    stop = threading.Event()
    offline = LanceOfflineStore(settings.offline_location)
    thread = threading.Thread(target=run_main, args=(features.get_flow(settings, stop),))
    start = time.perf_counter()
    thread.start()
    while offline.count(FEATURES_TABLE) < count - bad:
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    stop.set()
    thread.join()
    return count / elapsed


class _TopicCounter:
    """Counts the messages on partition 0 of a topic, without blocking."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self._consumer = make_consumer(settings.kafka)
        self._consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        self.seen = 0

    def poll(self) -> int:
        self.seen += sum(m.error() is None for m in self._consumer.consume(1000, 0))
        return self.seen

    def close(self) -> None:
        self._consumer.close()


def fraud_project(directory: Path) -> Project:
    """The project in `directory` (the fraud example by default), which must have the group
    the bench measures."""
    project = load_project(directory)
    if FRAUD_GROUP not in project.groups:
        raise SystemExit(f"{directory}: no feature group {FRAUD_GROUP!r} to measure")
    return project


def generic_rate(settings: Settings, project: Project, count: int, bad: int
                 ) -> tuple[float, int, int]:
    """Events/s of `fti materialize` on `project` until the fraud group's offline table holds
    every valid transaction and the stream's DLQ every invalid one (or, should the engine
    judge an event otherwise than the generator, until the two hold every event); returns
    the rate, the offline rows and the DLQ messages."""
    group = project.groups[FRAUD_GROUP]
    stream = group.stream
    topics = sorted({t for s in project.streams.values() for t in (s.topic, s.dlq_topic) if t})
    ensure_topic_names(settings.kafka, topics)
    stop = threading.Event()
    offline = LanceOfflineStore(settings.offline_location)
    dlq = _TopicCounter(settings, stream.dlq_topic or "")
    flow = materialize.get_flow(settings, project, stop)
    thread = threading.Thread(target=run_main, args=(flow,))
    start = time.perf_counter()
    thread.start()
    rows = dead = 0
    while not (rows >= count - bad and dead >= bad) and rows + dead < count:
        time.sleep(0.05)
        rows, dead = offline.count(group.table_name), dlq.poll()
    elapsed = time.perf_counter() - start
    stop.set()
    thread.join()
    dlq.close()
    return count / elapsed, rows, dead


def main(events: int, engine: str = "generic", project_dir: Path = FRAUD_PROJECT
         ) -> dict[str, object]:
    """Run both measurements on one fresh broker; return the figures."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    project = fraud_project(project_dir) if engine == "generic" else None
    with EmbeddedBroker(BrokerSettings(port=free_port())) as broker:
        settings = Settings(
            data_dir=Path(tempfile.mkdtemp()),
            kafka=KafkaSettings(bootstrap_servers=broker.bootstrap_servers),
            metrics=MetricsSettings(features_port=0),
        )
        ensure_topics(settings.kafka, settings.topics)
        if project is not None:
            # The example reads its own topic names; on this fresh broker they are the
            # defaults, so both measurements read the very same messages.
            stream = project.groups[FRAUD_GROUP].stream
            if stream.topic != settings.topics.transactions:
                raise SystemExit(f"the project's stream reads {stream.topic!r}; the bench "
                                 f"produces to {settings.topics.transactions!r}")
        bad = produce_transactions(settings, StreamSpec(count=events, bad_fraction=0.01))
        raw = raw_rate(settings, events)
        extra: dict[str, object] = {}
        if project is None:
            pipeline = pipeline_rate(settings, events, bad)
        else:
            pipeline, rows, dead = generic_rate(settings, project, events, bad)
            extra = {"table": project.groups[FRAUD_GROUP].table_name, "offline_rows": rows,
                     "dlq": dead}
    return {
        "engine": engine,
        "events": events,
        "bad": bad,
        "raw_events_per_s": round(raw),
        "pipeline_events_per_s": round(pipeline),
        "ratio": round(pipeline / raw, 3),
        **extra,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50000)
    parser.add_argument("--engine", choices=ENGINES, default="generic",
                        help="generic: fti materialize on the fraud example project (default); "
                             "builtin: the built-in fraud feature flow")
    parser.add_argument("--project", type=Path, default=FRAUD_PROJECT,
                        help=f"the project the generic engine runs (default {FRAUD_PROJECT})")
    args = parser.parse_args()
    print(json.dumps(main(args.events, args.engine, args.project)))
