"""A partition reader across a restart of an in-memory broker: the topic is recreated, its
offsets begin at 0 again, and the reader tells the incarnations apart by topic id."""

from __future__ import annotations

import logging
import time

import pytest
from kafka import KafkaProducer

from fti.connectors.kafka.clients import ensure_topic_names, topic_id
from fti.connectors.kafka.reader import KafkaRecord, PartitionReader, Position
from fti.infra.embedded_broker import EmbeddedBroker, free_port
from fti.settings import BrokerSettings, KafkaSettings

TOPIC = "restarts"


def _produce(kafka: KafkaSettings, values: list[bytes]) -> None:
    # A foreign client writes; ours reads.
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    for value in values:
        producer.send(TOPIC, value)
    producer.flush(10)
    producer.close()


def _read(reader: PartitionReader, expected: int, timeout_s: float = 20.0) -> list[KafkaRecord]:
    records: list[KafkaRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < expected and time.monotonic() < deadline:
        records += reader.read_batch(100)
        time.sleep(0.05)
    return records


def _fresh_topic(broker: EmbeddedBroker, values: list[bytes]) -> KafkaSettings:
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    ensure_topic_names(kafka, [TOPIC])
    _produce(kafka, values)
    return kafka


@pytest.mark.slow
def test_reader_tells_a_recreated_topic_from_the_old_one(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="fti.connectors.kafka.reader")
    port = free_port()
    with EmbeddedBroker(BrokerSettings(port=port)) as broker:
        kafka = _fresh_topic(broker, [b"old-%d" % i for i in range(10)])
        first_id = topic_id(kafka, TOPIC)
        running = PartitionReader(kafka, TOPIC, 0, None)
        old = _read(running, 10)
        assert [r.offset for r in old] == list(range(10))
        assert {r.topic_id for r in old} == {first_id} and first_id
        snapshot = running.position
        assert snapshot == Position(first_id, 10)

    with EmbeddedBroker(BrokerSettings(port=port)) as broker:  # memory storage: all gone
        kafka = _fresh_topic(broker, [b"new-%d" % i for i in range(3)])
        second_id = topic_id(kafka, TOPIC)
        assert second_id and second_id != first_id

        # A reader resumed from the old snapshot starts at the new topic's beginning.
        resumed = PartitionReader(kafka, TOPIC, 0, snapshot)
        new = _read(resumed, 3)
        assert [(r.offset, r.value, r.topic_id) for r in new] == [
            (i, b"new-%d" % i, second_id) for i in range(3)]
        # The reader that kept running sees offsets go back and takes the new id.
        carried_on = _read(running, 3)
        assert [(r.offset, r.topic_id) for r in carried_on] == [(i, second_id) for i in range(3)]
        resumed.close()
        running.close()
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "recreated since the last snapshot" in said and "instead of offset 10" in said
    assert "was recreated (id" in said


def test_a_bare_offset_from_an_older_snapshot_is_trusted(settings) -> None:  # noqa: ANN001
    kafka = settings.kafka
    topic = settings.topics.predictions
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    for i in range(5):
        producer.send(topic, b"%d" % i)
    producer.flush(10)
    producer.close()
    reader = PartitionReader(kafka, topic, 0, 3)
    records: list[KafkaRecord] = []
    deadline = time.monotonic() + 20
    while len(records) < 2 and time.monotonic() < deadline:
        records += reader.read_batch(10)
    reader.close()
    assert [r.offset for r in records] == [3, 4]
    assert records[0].topic_id == topic_id(kafka, topic) != ""
