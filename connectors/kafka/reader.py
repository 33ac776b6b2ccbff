"""Read one Kafka partition in batches, from an offset we keep ourselves (no consumer group).

Like Bytewax's own Kafka source it assigns the partition itself; unlike it, it never reads
the high watermark as "end of data" (Tansu's lags by a batch). The flow that owns a reader
keeps `next_offset` in its recovery snapshot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, KafkaException, Message, TopicPartition

from fti.connectors.errors import BrokerError
from fti.connectors.kafka.clients import make_consumer, partitions_of
from fti.settings import KafkaSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KafkaRecord:
    """One record as read from Kafka, with its source coordinates.

    >>> KafkaRecord("t", 0, 7, None, b"{}", 0).source
    't:0:7'
    """

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


class PartitionReader:
    """Batches of records of `topic[partition]` from `offset` (None: the beginning) on."""

    def __init__(self, kafka: KafkaSettings, topic: str, partition: int,
                 offset: int | None) -> None:
        self._consumer = make_consumer(kafka)
        start = OFFSET_BEGINNING if offset is None else offset
        self._consumer.assign([TopicPartition(topic, partition, start)])
        self.topic, self.partition = topic, partition
        self.next_offset = 0 if offset is None else offset

    def read_batch(self, max_records: int) -> list[KafkaRecord]:
        """Up to `max_records` records without waiting; raise `BrokerError` on a fatal error."""
        batch = []
        for msg in self._consumer.consume(max_records, 0):
            error = msg.error()
            if error is not None:
                if error.retriable() or error.code() < 0:
                    continue  # librdkafka retries transient and internal errors itself
                raise BrokerError(f"reading {self.topic}[{self.partition}]: {error}")
            batch.append(_record(msg))
        if batch:
            self.next_offset = batch[-1].offset + 1
        return batch

    def lag(self) -> int | None:
        """Records between our position and the high watermark librdkafka cached from the
        last fetch (no request to the broker); None until a fetch has answered."""
        _, high = self._consumer.get_watermark_offsets(
            TopicPartition(self.topic, self.partition), cached=True
        )
        return max(high - self.next_offset, 0) if high >= 0 else None

    def close(self) -> None:
        """Leave the partition and release the client."""
        self._consumer.close()


class TopicsReader:
    """Every partition of `topics` from the beginning, in one client (a watcher's view)."""

    def __init__(self, kafka: KafkaSettings, topics: list[str]) -> None:
        self._consumer = make_consumer(kafka)
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)
                               for topic in topics for p in partitions_of(kafka, topic)])

    def read_batch(self, max_records: int, timeout_s: float) -> list[KafkaRecord]:
        """Up to `max_records` records, waiting up to `timeout_s` for the first; errors skipped."""
        return [_record(m) for m in self._consumer.consume(max_records, timeout_s)
                if m.error() is None]

    def close(self) -> None:
        """Release the client."""
        self._consumer.close()


class GroupReader:
    """Records of `topics` as a member of consumer group `group_id`; offsets committed only
    when asked, so what was read but not handled is read again after a crash."""

    def __init__(self, kafka: KafkaSettings, group_id: str, topics: list[str]) -> None:
        self._consumer = make_consumer(kafka, group_id=group_id)
        self._consumer.subscribe(topics)

    def poll(self, timeout_s: float) -> KafkaRecord | None:
        """The next record, or None when none arrived within `timeout_s` (errors skipped)."""
        msg = self._consumer.poll(timeout_s)
        return None if msg is None or msg.error() is not None else _record(msg)

    def commit(self) -> bool:
        """Commit the positions of every record polled so far; False (logged) when the broker
        could not take it, so the caller tries again later."""
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as ex:
            log.warning("could not commit offsets yet: %s", ex.args[0] if ex.args else ex)
            return False
        return True

    def close(self) -> None:
        """Leave the group and release the client."""
        self._consumer.close()


def _record(msg: Message) -> KafkaRecord:
    return KafkaRecord(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(),
                       msg.timestamp()[1])
