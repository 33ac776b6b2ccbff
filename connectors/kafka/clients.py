"""Kafka clients built from settings: producers, consumers and topic creation."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicCollection
from confluent_kafka.admin import AdminClient, NewTopic

from fti.connectors.kafka.logs import librdkafka_logger
from fti.errors import BrokerError
from fti.settings import KafkaSettings, TopicSettings

log = logging.getLogger(__name__)

#: Configs every topic fti creates states explicitly (Kafka's own defaults): the embedded
#: broker (Tansu) describes only the configs set at creation, and tools that read a topic's
#: configs, such as Quix Streams deriving its changelog topics, fail on a missing one.
TOPIC_CONFIG = {"cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000)}


def client_config(kafka: KafkaSettings) -> dict[str, Any]:
    """`kafka.client_config()` with librdkafka's logs routed to Python logging, rate-limited."""
    return {**kafka.client_config(), "logger": librdkafka_logger()}


def make_producer(kafka: KafkaSettings, **overrides: Any) -> Producer:
    """A producer with idempotent-friendly defaults (acks=all, small linger for batching)."""
    config = {"linger.ms": 5, "acks": "all", **client_config(kafka), **overrides}
    return Producer(config)


def make_consumer(kafka: KafkaSettings, group_id: str | None = None, **overrides: Any) -> Consumer:
    """A consumer; with `group_id` it joins that group (short session timeout for Tansu)."""
    config: dict[str, Any] = {
        **client_config(kafka),
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
    ensure_topic_names(kafka, topics.all(), topics.partitions, timeout_s)


def ensure_topic_names(
    kafka: KafkaSettings, names: list[str], partitions: int = 1, timeout_s: float = 10.0
) -> None:
    """Create the topics among `names` that do not exist yet; raise `BrokerError` when the
    broker cannot be reached or refuses."""
    admin = AdminClient(client_config(kafka))
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as ex:
        raise BrokerError(f"cannot reach Kafka at {kafka.bootstrap_servers}: {ex}; "
                          "check FTI_KAFKA__BOOTSTRAP_SERVERS") from ex
    missing = [name for name in names if name not in existing]
    if not missing:
        return
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=TOPIC_CONFIG)
         for name in missing]
    )
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as ex:
            if "TOPIC_ALREADY_EXISTS" not in str(ex):
                raise BrokerError(f"could not create topic {name!r}: {ex}") from ex
    log.info("created topics: %s", ", ".join(missing))


def wait_for_broker(
    bootstrap_servers: str, timeout_s: float, exited: Callable[[], int | None] | None = None
) -> None:
    """Block until a broker at `bootstrap_servers` answers a metadata request; raise
    `BrokerError` on time-out, or as soon as `exited()` returns an exit code."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0,
                         "logger": librdkafka_logger()})
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        code = exited() if exited is not None else None
        if code is not None:
            raise BrokerError(
                f"the broker exited with code {code} during start-up; "
                f"is port {bootstrap_servers} already in use?"
            )
        try:
            if admin.list_topics(timeout=1.0).brokers:
                return
        except KafkaException as ex:  # raised while connecting
            last_error = ex
        time.sleep(0.1)
    raise BrokerError(
        f"no broker answered at {bootstrap_servers} within {timeout_s}s: {last_error}"
    )


def partitions_of(kafka: KafkaSettings, topic: str, timeout_s: float = 10.0,
                  unreachable_s: float = 300.0) -> list[int]:
    """Partition ids of `topic`; raise `BrokerError` if it does not exist.

    A broker that does not answer (paused, restarting) is waited for up to `unreachable_s`,
    logging once, rather than failing whoever asked: a flow being built, a watcher starting.
    """
    admin = AdminClient(client_config(kafka))
    deadline = time.monotonic() + unreachable_s
    while True:
        try:
            # Ask for all topics: a metadata request naming one may auto-create it elsewhere.
            metadata = admin.list_topics(timeout=timeout_s)
            break
        except KafkaException as ex:
            if time.monotonic() > deadline:
                raise BrokerError(f"no Kafka broker answered at {kafka.bootstrap_servers} "
                                  f"for {unreachable_s:g}s: {ex}") from ex
            log.warning("waiting for Kafka at %s to list %r: %s", kafka.bootstrap_servers,
                        topic, ex.args[0] if ex.args else ex)
    info = metadata.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        reason = info.error if info is not None else "not found"
        raise BrokerError(f"topic {topic!r} is not available: {reason}")
    return sorted(info.partitions)


def topic_id(kafka: KafkaSettings, topic: str, timeout_s: float = 10.0) -> str:
    """The broker's id of `topic` (KIP-516): a new one each time the topic is created.

    Offsets restart at 0 in a recreated topic, so `(topic id, partition, offset)` is what
    names a record for good; `(topic, partition, offset)` repeats after a broker that keeps
    topics in memory restarts. "" when the broker does not answer or has no topic ids.
    """
    admin = AdminClient(client_config(kafka))
    try:
        found = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout_s)
        uuid = found[topic].result().topic_id
    except KafkaException as ex:
        log.warning("no id for topic %r: %s", topic, ex.args[0] if ex.args else ex)
        return ""
    return "" if uuid is None else str(uuid)


class TopicIdProbe:
    """Asks the broker for a topic's id every `interval_s` without ever blocking the caller.

    `poll()` returns the id from the last answer that arrived since the previous call (else
    None) and starts the next request when one is due.
    """

    def __init__(self, kafka: KafkaSettings, topic: str, interval_s: float = 2.0) -> None:
        self._admin = AdminClient(client_config(kafka))
        self.topic, self.interval_s = topic, interval_s
        self._pending: Any = None
        self._due = time.monotonic() + interval_s

    def poll(self) -> str | None:
        """The topic id if an answer arrived since the last call, else None."""
        answer = None
        if self._pending is not None and self._pending.done():
            try:
                uuid = self._pending.result().topic_id
                answer = "" if uuid is None else str(uuid)
            except KafkaException:
                answer = None  # broker away or topic gone for now: ask again later
            self._pending = None
        if self._pending is None and time.monotonic() >= self._due:
            self._due = time.monotonic() + self.interval_s
            self._pending = self._admin.describe_topics(TopicCollection([self.topic]))[self.topic]
        return answer or None


def check_reachable(kafka: KafkaSettings, timeout_s: float = 5.0) -> None:
    """Raise `BrokerError` in one line unless a broker answers within `timeout_s`."""
    admin = AdminClient(client_config(kafka))
    try:
        brokers = admin.list_topics(timeout=timeout_s).brokers
    except KafkaException as ex:
        brokers, reason = {}, str(ex.args[0] if ex.args else ex)
    else:
        reason = "no broker in the metadata"
    if not brokers:
        raise BrokerError(
            f"no Kafka broker answered at {kafka.bootstrap_servers} within {timeout_s:g}s "
            f"({reason}); start one (`fti broker`, `fti up`) or set FTI_KAFKA__BOOTSTRAP_SERVERS"
        )
