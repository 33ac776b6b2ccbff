"""The trainer service: consumes `retrain.requests` and runs the training job for each.

Requests that were made before the last job started are covered by it and skipped, so a
burst of requests leads to one job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from confluent_kafka import Message

from connectors.kafka_clients import make_consumer, make_producer
from fti import metrics
from fti.errors import FtiError
from fti.events import RegistryEvent, RetrainRequest
from fti.settings import Settings
from models.specs import SPECS
from models.training_job import run_training_job

log = logging.getLogger(__name__)


class RegistryEventPublisher:
    """Publishes registry events to Kafka, keyed by model name, and waits for delivery."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topics.registry_events
        self._producer = make_producer(settings.kafka)

    def __call__(self, event: RegistryEvent) -> None:
        self._producer.produce(self.topic, key=event.model.encode(), value=event.to_json())
        self._producer.flush(30)


class TrainerService:
    """Runs one training job at a time for the requests it reads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.publish = RegistryEventPublisher(settings)
        self.last_started: datetime | None = None

    def handle(self, request: RetrainRequest) -> bool:
        """Run the job for `request` unless an earlier job covers it; True if a job ran."""
        if request.model not in SPECS:
            log.warning("no model spec for %r; request ignored", request.model)
            return False
        if self.last_started is not None and request.requested_at <= self.last_started:
            log.info("request (%s) covered by the job started at %s", request.reason,
                     self.last_started.isoformat())
            return False
        self.last_started = datetime.now(UTC)
        model = request.model
        start = time.perf_counter()
        try:
            result = run_training_job(
                self.settings, reason=request.reason, publish=self.publish, model=request.model
            )
        except FtiError as ex:
            metrics.TRAINING_RUNS.labels(model, "failed").inc()
            log.error("training %s for %s failed: %s", model, request.reason, ex)
            return True
        metrics.TRAINING_SECONDS.labels(model).observe(time.perf_counter() - start)
        metrics.TRAINING_RUNS.labels(model, "promoted" if result.promoted else "rejected").inc()
        return True

    def run(self, stop: threading.Event, on_ready: Callable[[], None] | None = None) -> None:
        """Consume requests until `stop` is set; offsets are committed after each request.

        `on_ready` is called once the consumer has subscribed."""
        consumer = make_consumer(self.settings.kafka, group_id="fti-trainer")
        consumer.subscribe([self.settings.topics.retrain_requests])
        if on_ready is not None:
            on_ready()
        try:
            while not stop.is_set():
                msg = consumer.poll(0.2)
                if msg is None or msg.error() is not None:
                    continue
                self._handle_message(msg)
                consumer.commit(msg, asynchronous=False)
        finally:
            consumer.close()

    def _handle_message(self, msg: Message) -> None:
        try:
            request = RetrainRequest.model_validate_json(msg.value() or b"")
        except ValueError as ex:
            log.warning("malformed retrain request at offset %s: %s", msg.offset(), ex)
            return
        self.handle(request)
