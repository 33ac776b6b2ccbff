"""Produce to Kafka with a delivery report for every message: nothing is lost silently.

`Publisher.send` queues a message; `flush` waits for the broker's acknowledgements and raises
`DeliveryError` naming each topic and how many of its messages were not delivered (failed
reports, or still queued when the timeout ran out). Failures are also counted in
`fti_produce_failures_total{topic}`.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

from fti import metrics
from fti.connectors.errors import ConnectorError
from fti.connectors.kafka.clients import make_producer
from fti.settings import KafkaSettings

log = logging.getLogger(__name__)


class DeliveryError(ConnectorError):
    """Messages were not acknowledged by the broker; `undelivered` counts them per topic."""

    def __init__(self, message: str, undelivered: dict[str, int]) -> None:
        super().__init__(message)
        self.undelivered = undelivered


class Publisher:
    """One producer whose every message gets a delivery report."""

    def __init__(self, kafka: KafkaSettings, **overrides: Any) -> None:
        self._producer = make_producer(kafka, **overrides)
        self._queued: Counter[str] = Counter()
        self._failed: Counter[str] = Counter()
        self._errors: dict[str, str] = {}
        self.delivered = 0

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Queue one message, waiting while the local queue is full."""
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._report)
                break
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain
            except KafkaException as ex:  # refused before queueing, e.g. larger than allowed
                self._fail(topic, str(ex.args[0] if ex.args else ex))
                return
        self._queued[topic] += 1

    def serve(self) -> None:
        """Handle the delivery reports that have arrived, without waiting."""
        self._producer.poll(0)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait up to `timeout_s` for every queued message; raise `DeliveryError` if any
        failed or is still queued."""
        left = self._producer.flush(timeout_s)
        if left:
            # What is still queued counts against the topics not yet acknowledged.
            for topic, queued in self._queued.items():
                if queued > 0:
                    self._failed[topic] += queued
                    metrics.PRODUCE_FAILURES.labels(topic).inc(queued)
                    self._errors.setdefault(topic, f"not acknowledged within {timeout_s:g}s")
        self._queued.clear()
        if self._failed:
            failed, errors = dict(self._failed), dict(self._errors)
            self._failed.clear()
            self._errors.clear()
            detail = "; ".join(f"{n} to {t!r} ({errors.get(t, '?')})" for t, n in failed.items())
            raise DeliveryError(f"Kafka did not acknowledge {sum(failed.values())} "
                                f"message(s): {detail}", failed)

    def _report(self, error: KafkaError | None, message: Message) -> None:
        topic = message.topic() or "?"
        self._queued[topic] -= 1
        if error is None:
            self.delivered += 1
            return
        self._fail(topic, str(error))

    def _fail(self, topic: str, error: str) -> None:
        self._failed[topic] += 1
        metrics.PRODUCE_FAILURES.labels(topic).inc()
        if topic not in self._errors:  # one line per topic until the next flush, not per message
            log.error("delivery to %r failed: %s", topic, error)
            self._errors[topic] = error
