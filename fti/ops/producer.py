"""Send a project's scenario (its events and their late labels) to Kafka at a steady rate."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from tqdm import tqdm

from fti.connectors.kafka.publisher import Publisher
from fti.ops.scenario import DemoRecord
from fti.settings import Settings


@dataclass
class ProducedCounts:
    """What has been sent so far."""

    events: int = 0  # of the scored stream
    bad_events: int = 0
    labels: int = 0  # events of the other streams
    first_drifted_at: float | None = None  # wall time of the first drifted event
    drifted: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class ScenarioProducer:
    """Produces a project's demo scenario in order; `send(n)` sends the next n events of the
    scored stream (with the label events due meanwhile). `counts.events` counts those
    events, `counts.labels` the rest."""

    def __init__(self, settings: Settings, records: Iterator[DemoRecord],
                 topics: Mapping[str, str], events_stream: str, count: int) -> None:
        self.counts = ProducedCounts()
        self.count = count
        self.topics, self.events_stream = dict(topics), events_stream
        self._records = records
        self._publisher = Publisher(settings.kafka)

    @property
    def exhausted(self) -> bool:
        """True once every event of the scenario has been sent."""
        return self.counts.events >= self.count

    def send(self, events: int, rate: float = 0.0, progress: bool = False) -> int:
        """Send up to `events` more events (with the labels due), `rate` per second (0 = as
        fast as possible); return how many were sent."""
        target = min(self.counts.events + events, self.count)
        start, sent = time.monotonic(), 0
        bar = tqdm(total=target - self.counts.events, unit="event", disable=not progress)
        for record in self._records:
            self._produce(record)
            if record.stream != self.events_stream:
                continue
            sent += 1
            bar.update(1)
            if rate > 0 and sent % 50 == 0:
                ahead = start + sent / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            if self.counts.events >= target:
                break
        bar.close()
        self._publisher.flush(30)
        return sent

    def finish(self) -> None:
        """Send everything left, labels included, as fast as possible."""
        for record in self._records:
            self._produce(record)
        self._publisher.flush(30)

    def _produce(self, record: DemoRecord) -> None:
        self._publisher.send(self.topics[record.stream], record.value, record.key)
        self._publisher.serve()
        c = self.counts
        if record.stream != self.events_stream:
            c.labels += 1
            return
        c.events += 1
        c.bad_events += record.bad
        c.drifted += record.drifted
        if record.drifted and c.first_drifted_at is None:
            c.first_drifted_at = time.time()
