"""The embedded broker: starts, creates topics, carries records, refuses a taken port."""

from __future__ import annotations

import pytest

from fti.connectors.kafka.clients import ensure_topics, make_producer, partitions_of
from fti.errors import BrokerError
from fti.infra.embedded_broker import EmbeddedBroker
from fti.settings import BrokerSettings, Settings
from tests.support import read_topic


def test_topics_are_created_once_and_carry_records(settings: Settings) -> None:
    ensure_topics(settings.kafka, settings.topics)  # a second call changes nothing
    for topic in settings.topics.all():
        assert partitions_of(settings.kafka, topic) == [0]
    producer = make_producer(settings.kafka)
    for i in range(100):
        producer.produce(settings.topics.labels, key=b"k", value=str(i).encode())
    producer.flush(10)
    values = [int(m.value()) for m in read_topic(settings.kafka, settings.topics.labels)]
    assert values == list(range(100))


def test_missing_topic_is_a_clear_error(settings: Settings) -> None:
    with pytest.raises(BrokerError, match="no-such-topic"):
        partitions_of(settings.kafka, "no-such-topic", timeout_s=5)


def test_a_second_broker_on_a_taken_port_fails_clearly(broker: EmbeddedBroker) -> None:
    taken = BrokerSettings(port=broker.settings.port, start_timeout_s=5)
    with pytest.raises(BrokerError, match="already in use"):
        EmbeddedBroker(taken).start()
