"""A Bytewax sink that produces `(topic, key, value)` items to Kafka, at least once.

Every message has a delivery report (`fti.connectors.kafka.publisher.Publisher`): failures
are logged and counted in `fti_produce_failures_total` as they arrive, and what is still
undelivered when the flow stops is reported by name and count.
"""

from __future__ import annotations

import logging

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from fti.connectors.kafka.publisher import DeliveryError, Publisher
from fti.settings import KafkaSettings

log = logging.getLogger(__name__)

#: What the sink takes: topic, key, value.
OutMessage = tuple[str, bytes | None, bytes]


class _ProducerPartition(StatelessSinkPartition[OutMessage]):
    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher

    def write_batch(self, items: list[OutMessage]) -> None:
        for topic, key, value in items:
            self._publisher.send(topic, value, key)
        self._publisher.serve()

    def close(self) -> None:
        try:
            self._publisher.flush(30)
        except DeliveryError as ex:
            log.error("on stop: %s", ex)


class KafkaProducerSink(DynamicSink[OutMessage]):
    """Each worker gets its own producer; `close` flushes everything still queued."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _ProducerPartition:
        return _ProducerPartition(Publisher(self.kafka))
