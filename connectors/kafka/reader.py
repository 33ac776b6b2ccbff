"""Read one Kafka partition in batches, from an offset we keep ourselves (no consumer group).

Like Bytewax's own Kafka source it assigns the partition itself; unlike it, it never reads
the high watermark as "end of data" (Tansu's lags by a batch). The flow that owns a reader
keeps its `position` (topic id and next offset) in its recovery snapshot.

A topic that is deleted and created again (an embedded broker that restarted: it keeps topics
in memory) restarts at offset 0 under a new topic id. The reader notices, says so, reads the
new topic from its beginning, and stamps every record with the id it came from, so
`(topic id, partition, offset)` names a record for good.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple

from confluent_kafka import OFFSET_BEGINNING, KafkaException, Message, TopicPartition

from fti.connectors.errors import BrokerError
from fti.connectors.kafka.clients import TopicIdProbe, make_consumer, partitions_of, topic_id
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
    #: The broker's id of the topic incarnation the record was read from ("" if unknown).
    topic_id: str = ""

    def source_columns(self) -> dict[str, str | int]:
        """The record's coordinates as the offline store's source columns.

        >>> KafkaRecord("t", 0, 7, None, b"{}", 0, "id1").source_columns()["source_topic_id"]
        'id1'
        """
        return {"source_topic": self.topic, "source_partition": self.partition,
                "source_offset": self.offset, "source_topic_id": self.topic_id}

    @staticmethod
    def source_column_lists(records: list[KafkaRecord]) -> dict[str, list[str | int]]:
        """`source_columns` of many records, a list per column.

        >>> columns = KafkaRecord.source_column_lists([KafkaRecord("t", 0, 7, None, b"{}", 0)])
        >>> columns["source_topic"], columns["source_offset"]
        (['t'], [7])
        """
        return {"source_topic": [r.topic for r in records],
                "source_partition": [r.partition for r in records],
                "source_offset": [r.offset for r in records],
                "source_topic_id": [r.topic_id for r in records]}

    @property
    def source(self) -> str:
        """`topic:partition:offset`, unique per record."""
        return f"{self.topic}:{self.partition}:{self.offset}"


class Position(NamedTuple):
    """Where a reader is: the topic's id and the next offset to read in its partition."""

    topic_id: str
    next_offset: int


class PartitionReader:
    """Batches of records of `topic[partition]` from `resume` (None: the beginning) on.

    `resume` is a `Position` from an earlier reader; if the topic has been recreated since
    (its id changed), the reader starts at the new topic's beginning and logs why. A bare
    offset (older snapshots) is trusted as it is.
    """

    def __init__(self, kafka: KafkaSettings, topic: str, partition: int,
                 resume: Position | int | None) -> None:
        self._kafka = kafka
        self.topic, self.partition = topic, partition
        self.topic_id = topic_id(kafka, topic)
        offset = _start_offset(topic, partition, self.topic_id, resume)
        self._consumer = make_consumer(kafka)
        start = OFFSET_BEGINNING if offset is None else offset
        self._consumer.assign([TopicPartition(topic, partition, start)])
        self.next_offset = 0 if offset is None else offset
        # Some brokers (Tansu) answer a fetch beyond a recreated topic's end with nothing
        # rather than OFFSET_OUT_OF_RANGE: the reader would wait there, then skip the new
        # topic's first records. Watching the topic id catches the recreation.
        self._id_probe = TopicIdProbe(kafka, topic)

    @property
    def position(self) -> Position:
        """The topic id and next offset, for a recovery snapshot."""
        return Position(self.topic_id, self.next_offset)

    def read_batch(self, max_records: int) -> list[KafkaRecord]:
        """Up to `max_records` records without waiting; raise `BrokerError` on a fatal error."""
        current_id = self._id_probe.poll()
        if current_id and self.topic_id and current_id != self.topic_id:
            self._recreated(current_id)
        elif current_id:
            self.topic_id = current_id
        batch = []
        for msg in self._consumer.consume(max_records, 0):
            error = msg.error()
            if error is not None:
                if error.retriable() or error.code() < 0:
                    continue  # librdkafka retries transient and internal errors itself
                raise BrokerError(f"reading {self.topic}[{self.partition}]: {error}")
            if msg.offset() < self.next_offset:
                self._reset(msg.offset())
            batch.append(_record(msg, self.topic_id))
        if batch:
            self.next_offset = batch[-1].offset + 1
        return batch

    def _recreated(self, new_id: str) -> None:
        """The topic id changed: read the new topic from its beginning."""
        log.warning(
            "topic %s was recreated (id %s -> %s), as after a restart of a broker that keeps "
            "topics in memory: reading partition %d from its beginning instead of offset %d",
            self.topic, self.topic_id, new_id, self.partition, self.next_offset,
            extra={"event": "topic_reset"},
        )
        self.topic_id, self.next_offset = new_id, 0
        self._consumer.assign([TopicPartition(self.topic, self.partition, OFFSET_BEGINNING)])

    def _reset(self, offset: int) -> None:
        """Offsets went back: the topic was recreated (or truncated) under us."""
        old = self.topic_id
        self.topic_id = topic_id(self._kafka, self.topic) or old
        log.warning(
            "topic %s[%d] restarted at offset %d (we were at %d; topic id %s -> %s): it was "
            "recreated, as after a restart of a broker that keeps topics in memory; reading "
            "it from there", self.topic, self.partition, offset, self.next_offset,
            old or "?", self.topic_id or "?", extra={"event": "topic_reset"},
        )

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


def _start_offset(topic: str, partition: int, current_id: str,
                  resume: Position | int | None) -> int | None:
    if resume is None or isinstance(resume, int):
        return resume
    saved_id, offset = resume
    if saved_id and current_id and saved_id != current_id:
        log.warning(
            "topic %s was recreated since the last snapshot (id %s -> %s): reading partition "
            "%d from its beginning instead of offset %d", topic, saved_id, current_id,
            partition, offset, extra={"event": "topic_reset"},
        )
        return None
    return offset


def _record(msg: Message, topic_id: str = "") -> KafkaRecord:
    return KafkaRecord(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(),
                       msg.timestamp()[1], topic_id)
