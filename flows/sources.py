"""A Bytewax source over Kafka partitions that stops cleanly when asked.

Each partition is read by a `fti.connectors.kafka.reader.PartitionReader`; its position (topic
id and next offset) is kept in the recovery snapshot. The partitions end when a
`threading.Event` is set, so a SIGTERM drains the dataflow and flushes its sinks instead of
killing it.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from fti import metrics
from fti.connectors.kafka.clients import partitions_of
from fti.connectors.kafka.reader import KafkaRecord, PartitionReader, Position
from fti.settings import KafkaSettings

_IDLE_WAIT = timedelta(milliseconds=5)


class _PartitionReader(StatefulSourcePartition[KafkaRecord, Position]):
    def __init__(
        self, kafka: KafkaSettings, topic: str, partition: int, resume: Position | int | None,
        batch_size: int, stop: threading.Event | None, flow: str, batched: bool = False,
    ) -> None:
        self._reader = PartitionReader(kafka, topic, partition, resume)
        self._batch_size, self._stop, self._batched = batch_size, stop, batched
        self._awake: datetime | None = None
        self._events_in = metrics.EVENTS_IN.labels(flow, topic)
        self._lag_labels = (flow, topic, str(partition))
        self._lag = metrics.CONSUMER_LAG.labels(*self._lag_labels)

    def next_batch(self) -> list[KafkaRecord]:
        if self._stop is not None and self._stop.is_set():
            raise StopIteration
        batch = self._reader.read_batch(self._batch_size)
        if batch:
            self._events_in.inc(len(batch))
            self._awake = None
        else:
            # Sleep a little instead of spinning on an idle partition.
            self._awake = datetime.now(UTC) + _IDLE_WAIT
        lag = self._reader.lag()
        if lag is not None:
            self._lag.set(lag)
        if self._batched:
            return [batch] if batch else []
        return batch

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> Position:
        return self._reader.position

    def close(self) -> None:
        self._reader.close()
        metrics.CONSUMER_LAG.remove(*self._lag_labels)


class KafkaPartitionSource(FixedPartitionedSource[KafkaRecord, Position]):
    """Read `topics` from the beginning (or the recovered offset), until `stop` is set.

    Records read are counted in `fti_events_in_total{flow, topic}`. `batched=True` emits each
    batch read from a partition as one item (a list of records), for steps that work a batch
    at a time.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: list[str],
        stop: threading.Event | None = None,
        batch_size: int = 1000,
        flow: str = "unnamed",
        batched: bool = False,
    ) -> None:
        self.kafka, self.topics, self.stop, self.batch_size = kafka, topics, stop, batch_size
        self.flow, self.batched = flow, batched

    def list_parts(self) -> list[str]:
        return [f"{p}-{topic}" for topic in self.topics for p in partitions_of(self.kafka, topic)]

    def build_part(self, step_id: str, for_part: str,
                   resume_state: Position | int | None) -> _PartitionReader:
        partition, topic = for_part.split("-", 1)
        return _PartitionReader(
            self.kafka, topic, int(partition), resume_state, self.batch_size, self.stop, self.flow,
            self.batched,
        )
