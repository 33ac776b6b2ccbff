"""Kafka clients built from settings: producers, consumers and topic creation."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from fti.errors import BrokerError
from fti.settings import KafkaSettings, TopicSettings

log = logging.getLogger(__name__)


def make_producer(kafka: KafkaSettings, **overrides: Any) -> Producer:
    """A producer with idempotent-friendly defaults (acks=all, small linger for batching)."""
    config = {"linger.ms": 5, "acks": "all", **kafka.client_config(), **overrides}
    return Producer(config)


def make_consumer(kafka: KafkaSettings, group_id: str | None = None, **overrides: Any) -> Consumer:
    """A consumer; with `group_id` it joins that group (short session timeout for Tansu)."""
    config: dict[str, Any] = {
        **kafka.client_config(),
        # Sources assign partitions themselves; a group id is still required by librdkafka.
        "group.id": group_id or "fti-unused",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": kafka.session_timeout_ms,
        "heartbeat.interval.ms": max(kafka.session_timeout_ms // 3, 500),
        "fetch.wait.max.ms": kafka.fetch_wait_max_ms,
        **overrides,
    }
    return Consumer(config)


def ensure_topics(kafka: KafkaSettings, topics: TopicSettings, timeout_s: float = 10.0) -> None:
    """Create every fti topic that does not exist yet; existing ones are left as they are."""
    admin = AdminClient(kafka.client_config())
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [name for name in topics.all() if name not in existing]
    if not missing:
        return
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=topics.partitions, replication_factor=1) for name in missing]
    )
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as ex:
            if "TOPIC_ALREADY_EXISTS" not in str(ex):
                raise BrokerError(f"could not create topic {name!r}: {ex}") from ex
    log.info("created topics: %s", ", ".join(missing))


def partitions_of(kafka: KafkaSettings, topic: str, timeout_s: float = 10.0) -> list[int]:
    """Partition ids of `topic`; raise `BrokerError` if it does not exist."""
    # Ask for all topics: a metadata request naming one may auto-create it on some brokers.
    metadata = AdminClient(kafka.client_config()).list_topics(timeout=timeout_s)
    info = metadata.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        reason = info.error if info is not None else "not found"
        raise BrokerError(f"topic {topic!r} is not available: {reason}")
    return sorted(info.partitions)
