"""A Bytewax sink that produces `(topic, key, value)` items to Kafka, at least once."""

from __future__ import annotations

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import Producer

from fti.connectors.kafka.clients import make_producer
from fti.settings import KafkaSettings

#: What the sink takes: topic, key, value.
OutMessage = tuple[str, bytes | None, bytes]


class _ProducerPartition(StatelessSinkPartition[OutMessage]):
    def __init__(self, producer: Producer) -> None:
        self._producer = producer

    def write_batch(self, items: list[OutMessage]) -> None:
        for topic, key, value in items:
            while True:
                try:
                    self._producer.produce(topic, value=value, key=key)
                    break
                except BufferError:
                    self._producer.poll(0.05)  # local queue full: let deliveries drain
        self._producer.poll(0)

    def close(self) -> None:
        self._producer.flush(30)


class KafkaProducerSink(DynamicSink[OutMessage]):
    """Each worker gets its own producer; `close` flushes everything still queued."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _ProducerPartition:
        return _ProducerPartition(make_producer(self.kafka))
