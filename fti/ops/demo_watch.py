"""What the demo watches on Kafka: predictions, retrain requests, registry events, the DLQ."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fti.connectors.kafka.reader import TopicsReader
from fti.settings import Settings


@dataclass
class LoopState:
    """Everything seen so far, with wall times of the moments that matter."""

    predictions_by_version: Counter[int] = field(default_factory=Counter)
    first_prediction_at: dict[int, float] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    registry_events: list[dict[str, Any]] = field(default_factory=list)
    dlq_by_topic: Counter[str] = field(default_factory=Counter)
    predicted_ids: set[str] = field(default_factory=set)

    def first_drift_request(self) -> dict[str, Any] | None:
        """The first retrain request caused by drift."""
        return next((r for r in self.requests if r["reason"] == "drift"), None)

    def promoted_after_drift(self) -> int | None:
        """A version promoted after the first drift request, if any."""
        drift = self.first_drift_request()
        if drift is None:
            return None
        promoted = [
            e["version"] for e in self.registry_events
            if e["event"] == "promoted" and e.get("alias") in (None, "champion")
            and e["_seen_at"] >= drift["_seen_at"]
        ]
        return promoted[0] if promoted else None

    def loop_closed(self) -> bool:
        """A drift-triggered model is champion and has scored at least one event."""
        version = self.promoted_after_drift()
        return version is not None and self.predictions_by_version[version] > 0


class LoopWatcher(threading.Thread):
    """Reads the loop's output topics from the beginning into a `LoopState`."""

    def __init__(self, settings: Settings, dlq_topics: list[str],
                 model: str | None = None) -> None:
        super().__init__(name="demo-watcher", daemon=True)
        self.settings = settings
        #: The model whose predictions, requests and registry events count (None: any).
        self.model = model
        self.dlq_topics = dlq_topics
        self.state = LoopState()
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def run(self) -> None:
        t = self.settings.topics
        reader = TopicsReader(self.settings.kafka,
                              [t.predictions, t.retrain_requests, t.registry_events,
                               *self.dlq_topics])
        try:
            while not self.stopping.is_set():
                records = reader.read_batch(1000, 0.1)
                now = time.time()
                with self.lock:
                    for record in records:
                        self._take(record.topic, json.loads(record.value or b"null"), now)
        finally:
            reader.close()

    def _take(self, topic: str, value: dict[str, Any], now: float) -> None:
        t, s = self.settings.topics, self.state
        if (topic in (t.predictions, t.retrain_requests, t.registry_events)
                and self.model is not None and value.get("model") != self.model):
            return
        if topic == t.predictions:
            if value["id"] in s.predicted_ids:
                return  # at-least-once delivery: count each event once
            s.predicted_ids.add(value["id"])
            s.predictions_by_version[value["version"]] += 1
            s.first_prediction_at.setdefault(value["version"], now)
        elif topic == t.retrain_requests:
            s.requests.append({**value, "_seen_at": now})
        elif topic == t.registry_events:
            s.registry_events.append({**value, "_seen_at": now})
        else:
            s.dlq_by_topic[value.get("source_topic", "?")] += 1

    def stop(self) -> None:
        """End the thread."""
        self.stopping.set()
        self.join(5)
