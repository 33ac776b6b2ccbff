"""Inference flow: transactions + online features → champion model → `predictions`.

The champion is followed through `registry.events` and swapped between batches without a
restart. Optionally (`shadow`), the `challenger` alias scores the same batches into
`predictions.shadow`; only the champion's predictions reach `predictions`. Invalid
transactions are skipped here (the feature flow sends them to the DLQ).
Run it with ``fti flow inference`` or ``python -m bytewax.run fti.flows.inference:flow``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Dataflow

from fti import metrics
from fti.connectors.kafka.reader import KafkaRecord
from fti.connectors.kafka.registry_events import RegistryEventWatcher
from fti.connectors.online import open_online_store
from fti.errors import EventError, FtiError
from fti.events import Prediction, RegistryEvent, Transaction
from fti.features.serving import feature_vector
from fti.features.validation import parse_transaction
from fti.flows.champion import prepare_inference
from fti.flows.live_metrics import count_shadow
from fti.flows.records import SkipLog
from fti.flows.sinks import KafkaProducerSink, OutMessage
from fti.flows.sources import KafkaPartitionSource
from fti.models.registry import CHALLENGER, ModelRegistry
from fti.models.serving import (
    AliasHolder,
    ChallengerHolder,
    ChampionHolder,
    ServingModel,
    count_shadow_error,
)
from fti.settings import Settings, ValidationSettings, load_settings

log = logging.getLogger(__name__)


_SKIPS = SkipLog("inference")


def parse_or_skip(record: KafkaRecord, rules: ValidationSettings) -> Transaction | None:
    """The transaction in `record`, or None when it is invalid (the feature flow sends
    invalid transactions to the DLQ; here an unexpected error is counted and logged once)."""
    try:
        return parse_transaction(record.value or b"", rules)
    except EventError:
        return None
    except Exception as ex:
        _SKIPS.skip(record, ex)
        return None




@dataclass
class ShadowStats:
    """What shadow scoring did in this process: predictions, agreements, failures."""

    scored: int = 0
    agreed: int = 0
    errors: int = 0

    @property
    def agreement_rate(self) -> float | None:
        """Share of shadow labels equal to the champion's (None before any)."""
        return self.agreed / self.scored if self.scored else None


class BatchScorer:
    """Scores a batch of transactions with one model version: one lookup, one predict.

    With `shadow` on and a challenger loaded, the same feature matrix is also scored by the
    challenger; its predictions go to `shadow_topic` only, after the champion's, and any
    error there is counted and logged once per version, never raised.
    """

    def __init__(
        self,
        settings: Settings,
        champion: ChampionHolder,
        challenger: AliasHolder | None = None,
        shadow: bool = False,
        shadow_topic: str | None = None,
    ) -> None:
        self.store = open_online_store(settings)
        self.champion, self.challenger, self.shadow = champion, challenger, shadow
        self.threshold = settings.inference.threshold
        self.topic = settings.topics.predictions
        self.shadow_topic = shadow_topic or settings.topics.shadow_predictions
        self.shadow_stats = ShadowStats()
        self._failed_versions: set[int] = set()

    def __call__(self, batch: list[Transaction]) -> list[OutMessage]:
        started = time.perf_counter()
        model = self.champion.current  # fixed for the whole batch
        if model is None or not batch:
            raise RuntimeError("the inference flow started without a champion model")
        online = self.store.get_many([tx.card_id for tx in batch])
        matrix = np.array(
            [feature_vector(tx, online.get(tx.card_id)) for tx in batch], dtype=np.float32
        )
        scores = model.score(matrix)
        latency_ms = (time.perf_counter() - started) * 1000
        out = self._messages(self.topic, model, batch, scores, latency_ms)
        metrics.PREDICTIONS.labels(model.name, str(model.version)).inc(len(out))
        metrics.PREDICTION_LATENCY_SECONDS.observe(latency_ms / 1000)
        if self.shadow and self.challenger is not None:
            out.extend(self._shadow(batch, matrix, scores >= self.threshold))
        return out

    def _messages(
        self, topic: str, model: ServingModel, batch: list[Transaction], scores: np.ndarray,
        latency_ms: float,
    ) -> list[OutMessage]:
        now = datetime.now(UTC)
        out: list[OutMessage] = []
        for tx, score in zip(batch, scores, strict=True):
            prediction = Prediction(
                id=tx.tx_id, score=float(score), label=int(score >= self.threshold),
                model=model.name, version=model.version, latency_ms=latency_ms, ts=now,
            )
            out.append((topic, tx.tx_id.encode(), prediction.to_json()))
        return out

    def _shadow(
        self, batch: list[Transaction], matrix: np.ndarray, champion_labels: np.ndarray
    ) -> list[OutMessage]:
        """The challenger's predictions for `batch`, or none if there is none or it fails."""
        challenger = self.challenger.current if self.challenger else None
        if challenger is None:
            return []
        try:
            started = time.perf_counter()
            scores = challenger.score(matrix)
            latency_ms = (time.perf_counter() - started) * 1000
            out = self._messages(self.shadow_topic, challenger, batch, scores, latency_ms)
        except Exception as ex:  # noqa: BLE001 - the champion's predictions must still go out
            self.shadow_stats.errors += 1
            count_shadow_error(challenger.name, "score")
            if challenger.version not in self._failed_versions:
                self._failed_versions.add(challenger.version)
                log.warning("shadow scoring with %s v%d failed (logged once per version): %r",
                            challenger.name, challenger.version, ex)
            return []
        agreed = int(np.sum((scores >= self.threshold) == champion_labels))
        self.shadow_stats.scored += len(out)
        self.shadow_stats.agreed += agreed
        count_shadow(challenger.name, challenger.version, len(out), agreed)
        return out


def follow_challenger(settings: Settings, stop: threading.Event | None = None) -> ChallengerHolder:
    """A challenger holder that follows `registry.events` (alias "challenger") until `stop`."""
    model = settings.inference.model_name
    holder = ChallengerHolder(ModelRegistry(settings.registry_location), model)

    def on_change(event: RegistryEvent) -> None:
        if event.alias == CHALLENGER:
            holder.refresh()

    watcher = RegistryEventWatcher(settings, model, on_change, stop)
    watcher.start()
    if not watcher.ready.wait(30):
        raise FtiError("could not start following registry.events within 30s")
    holder.refresh()  # after `ready`, so a promotion in between is not missed
    return holder


def get_flow(
    settings: Settings,
    champion: ChampionHolder,
    stop: threading.Event | None = None,
    challenger: AliasHolder | None = None,
    shadow: bool | None = None,
    shadow_topic: str | None = None,
) -> Dataflow:
    """Build the inference dataflow around a champion holder that already has a model.

    `shadow` (default: `settings.inference.shadow`, off) also scores each batch with the
    challenger into `shadow_topic` (default: `settings.topics.shadow_predictions`); without a
    `challenger` holder, one that follows the registry is started.
    """
    if shadow is None:
        shadow = settings.inference.shadow
    if shadow_topic is None:
        shadow_topic = settings.topics.shadow_predictions
    if shadow and challenger is None:
        challenger = follow_challenger(settings, stop)
    flow = Dataflow("inference")
    tx_in = op.input(
        "transactions_in", flow,
        KafkaPartitionSource(
            settings.kafka, [settings.topics.transactions], stop, flow="inference"
        ),
    )  # KafkaRecord
    txs = op.filter_map("parse", tx_in, partial(parse_or_skip, rules=settings.validation))
    scorer = BatchScorer(settings, champion, challenger, shadow, shadow_topic)
    predictions = op.flat_map_batch("score", txs, scorer)  # (topic, tx_id, prediction json)
    op.output("predictions_out", predictions, KafkaProducerSink(settings.kafka))
    return flow


def __getattr__(name: str) -> Any:
    # `python -m bytewax.run fti.flows.inference:flow`: build from the environment on access.
    if name == "flow":
        settings = load_settings()
        return get_flow(settings, prepare_inference(settings, threading.Event()))
    raise AttributeError(name)
