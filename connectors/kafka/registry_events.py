"""Follow `registry.events` in a background thread and call back on champion changes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from confluent_kafka import Consumer, TopicPartition

from fti import metrics
from fti.connectors.kafka.clients import make_consumer, partitions_of
from fti.errors import EventError
from fti.events import RegistryEvent, decode_event
from fti.settings import Settings

log = logging.getLogger(__name__)


class RegistryEventWatcher(threading.Thread):
    """Reads registry events from the end of the topic on; `on_change(event)` for our model.

    It ends when `stop` is set (or `stop()` is called).

    `ready` is set once the consumer has its position, so a caller that reads the champion
    alias after `ready` cannot miss a promotion that happens in between.
    """

    def __init__(
        self,
        settings: Settings,
        model: str,
        on_change: Callable[[RegistryEvent], None],
        stop: threading.Event | None = None,
    ) -> None:
        super().__init__(name="registry-events", daemon=True)
        self.settings, self.model, self.on_change = settings, model, on_change
        self.ready = threading.Event()
        self.stopping = stop or threading.Event()

    def run(self) -> None:
        consumer = make_consumer(self.settings.kafka)
        while not self.stopping.is_set():
            try:
                consumer.assign(self._assignment(consumer))
                break
            except Exception as ex:  # the broker may be paused or restarting: try again
                log.warning("registry event watcher cannot start yet, retrying: %s", ex)
                self.stopping.wait(2.0)
        self.ready.set()
        try:
            while not self.stopping.is_set():
                try:
                    msg = consumer.poll(0.1)
                    if msg is not None and msg.error() is None:
                        self._handle(msg.value())
                except Exception:  # the thread must outlive any one event: hot-swaps depend on it
                    log.exception("registry event watcher: unexpected error, carrying on")
                    self.stopping.wait(1.0)
        finally:
            consumer.close()

    def _assignment(self, consumer: Consumer) -> list[TopicPartition]:
        topic = self.settings.topics.registry_events
        assignment = []
        for partition in partitions_of(self.settings.kafka, topic):
            # An explicit offset, so the position is fixed before `ready`; Tansu's high
            # watermark may lag by a batch, which only re-reads an event (handled idempotently).
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            assignment.append(TopicPartition(topic, partition, high))
        return assignment

    def _handle(self, raw: bytes | None) -> None:
        try:
            event = decode_event(RegistryEvent, raw or b"")
        except EventError as ex:
            topic = self.settings.topics.registry_events
            metrics.RECORDS_SKIPPED.labels("registry-watcher", topic).inc()
            log.warning("ignoring a malformed registry event: %s", ex)
            return
        if event.model == self.model and event.event in ("promoted", "rolled_back"):
            try:
                self.on_change(event)
            except Exception:
                log.exception("could not apply registry event %s", event.model_dump())

    def stop(self) -> None:
        """Ask the thread to end and wait for it."""
        self.stopping.set()
        self.join(5)
