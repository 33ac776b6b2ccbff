"""Feature-flow throughput against the limit measured in the same run.

`raw_events_per_s`: a bare confluent-kafka consumer plus JSON decode of the same topic on the
same broker. `pipeline_events_per_s`: the feature flow (validation, windows, SQLite and LanceDB
writes). Prints one JSON line. Usage: fti bench feature-ingest --events 200000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bytewax.testing import run_main
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from fti.connectors.kafka.clients import ensure_topics, make_consumer, make_producer
from fti.connectors.offline.store import LanceOfflineStore
from fti.features.definitions import FEATURES_TABLE
from fti.flows import features
from fti.infra.embedded_broker import EmbeddedBroker, free_port
from fti.settings import BrokerSettings, KafkaSettings, MetricsSettings, Settings
from fti.synthetic.transactions import StreamSpec, generate


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
                except ValueError:
                    pass
                seen += 1
    elapsed = time.perf_counter() - start
    consumer.close()
    return seen / elapsed


def pipeline_rate(settings: Settings, count: int, bad: int) -> float:
    """Events/s of the feature flow until every valid transaction is in the offline store."""
    import threading

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


def main(events: int) -> dict[str, float]:
    """Run both measurements on one fresh broker; return the figures."""
    with EmbeddedBroker(BrokerSettings(port=free_port())) as broker:
        settings = Settings(
            data_dir=Path(tempfile.mkdtemp()),
            kafka=KafkaSettings(bootstrap_servers=broker.bootstrap_servers),
            metrics=MetricsSettings(features_port=0),
        )
        ensure_topics(settings.kafka, settings.topics)
        bad = produce_transactions(settings, StreamSpec(count=events, bad_fraction=0.01))
        raw = raw_rate(settings, events)
        pipeline = pipeline_rate(settings, events, bad)
    return {
        "events": events,
        "raw_events_per_s": round(raw),
        "pipeline_events_per_s": round(pipeline),
        "ratio": round(pipeline / raw, 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50000)
    print(json.dumps(main(parser.parse_args().events)))
