"""A Bytewax source over Kafka partitions that stops cleanly when asked.

Like Bytewax's own `KafkaSource` it assigns partitions itself (no consumer group) and keeps
the next offset in its recovery snapshot. Unlike it, it never reads the high watermark as
"end of data" (Tansu's lags by a batch), and it ends its partitions when a `threading.Event`
is set, so a SIGTERM drains the dataflow and flushes its sinks instead of killing it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from fti import metrics
from fti.connectors.kafka.clients import make_consumer, partitions_of
from fti.errors import BrokerError
from fti.settings import KafkaSettings

_IDLE_WAIT = timedelta(milliseconds=5)


@dataclass(frozen=True)
class KafkaRecord:
    """One record as read from Kafka, with its source coordinates."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int

    @property
    def source(self) -> str:
        """`topic:partition:offset`, unique per record."""
        return f"{self.topic}:{self.partition}:{self.offset}"


class _PartitionReader(StatefulSourcePartition[KafkaRecord, int]):
    def __init__(
        self, kafka: KafkaSettings, topic: str, partition: int, offset: int | None,
        batch_size: int, stop: threading.Event | None, flow: str,
    ) -> None:
        self._consumer = make_consumer(kafka)
        start = OFFSET_BEGINNING if offset is None else offset
        self._consumer.assign([TopicPartition(topic, partition, start)])
        self._next_offset = 0 if offset is None else offset
        self._topic, self._partition = topic, partition
        self._batch_size, self._stop = batch_size, stop
        self._awake: datetime | None = None
        self._events_in = metrics.EVENTS_IN.labels(flow, topic)
        self._lag_labels = (flow, topic, str(partition))
        self._lag = metrics.CONSUMER_LAG.labels(*self._lag_labels)

    def next_batch(self) -> list[KafkaRecord]:
        if self._stop is not None and self._stop.is_set():
            raise StopIteration
        messages = self._consumer.consume(self._batch_size, 0)
        batch = []
        for msg in messages:
            if msg.error() is not None:
                if msg.error().retriable() or msg.error().code() < 0:
                    continue  # librdkafka retries transient and internal errors itself
                raise BrokerError(f"reading {self._topic}[{self._partition}]: {msg.error()}")
            batch.append(
                KafkaRecord(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(),
                            msg.timestamp()[1])
            )
        if batch:
            self._events_in.inc(len(batch))
            self._next_offset = batch[-1].offset + 1
            self._awake = None
        else:
            # Sleep a little instead of spinning on an idle partition.
            self._awake = datetime.now(UTC) + _IDLE_WAIT
        self._report_lag()
        return batch

    def _report_lag(self) -> None:
        # The high watermark librdkafka cached from the last fetch: no request to the broker.
        _, high = self._consumer.get_watermark_offsets(
            TopicPartition(self._topic, self._partition), cached=True
        )
        if high >= 0:  # -1001 until the first fetch has answered
            self._lag.set(max(high - self._next_offset, 0))

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> int:
        return self._next_offset

    def close(self) -> None:
        self._consumer.close()
        metrics.CONSUMER_LAG.remove(*self._lag_labels)


class KafkaPartitionSource(FixedPartitionedSource[KafkaRecord, int]):
    """Read `topics` from the beginning (or the recovered offset), until `stop` is set.

    Records read are counted in `fti_events_in_total{flow, topic}`.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: list[str],
        stop: threading.Event | None = None,
        batch_size: int = 1000,
        flow: str = "unnamed",
    ) -> None:
        self.kafka, self.topics, self.stop, self.batch_size = kafka, topics, stop, batch_size
        self.flow = flow

    def list_parts(self) -> list[str]:
        return [f"{p}-{topic}" for topic in self.topics for p in partitions_of(self.kafka, topic)]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _PartitionReader:
        partition, topic = for_part.split("-", 1)
        return _PartitionReader(
            self.kafka, topic, int(partition), resume_state, self.batch_size, self.stop, self.flow
        )
