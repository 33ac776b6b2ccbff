"""Inference flow: transactions + online features → champion model → `predictions`.

The champion is followed through `registry.events` and swapped between batches without a
restart. Invalid transactions are skipped here (the feature flow sends them to the DLQ).
Run it with ``fti flow inference`` or ``python -m bytewax.run flows.inference:flow``.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from functools import partial
from typing import Any

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Dataflow

from connectors.kafka_sink import KafkaProducerSink, OutMessage
from connectors.kafka_source import KafkaPartitionSource, KafkaRecord
from connectors.online_store import open_online_store
from features.serving import feature_vector
from fti import metrics
from fti.errors import EventError
from fti.events import Prediction, Transaction, parse_transaction
from fti.settings import Settings, ValidationSettings
from models.serving import ChampionHolder


def parse_or_skip(record: KafkaRecord, rules: ValidationSettings) -> Transaction | None:
    """The transaction in `record`, or None when it is invalid."""
    try:
        return parse_transaction(record.value or b"", rules)
    except EventError:
        return None


class BatchScorer:
    """Scores a batch of transactions with one model version: one lookup, one predict."""

    def __init__(self, settings: Settings, champion: ChampionHolder) -> None:
        self.store = open_online_store(settings)
        self.champion = champion
        self.threshold = settings.inference.threshold
        self.topic = settings.topics.predictions

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
        now = datetime.now(UTC)
        out = []
        for tx, score in zip(batch, scores, strict=True):
            prediction = Prediction(
                tx_id=tx.tx_id, score=float(score), label=int(score >= self.threshold),
                model=model.name, version=model.version, latency_ms=latency_ms, ts=now,
            )
            out.append((self.topic, tx.tx_id.encode(), prediction.to_json()))
        metrics.PREDICTIONS.labels(model.name, str(model.version)).inc(len(out))
        metrics.PREDICTION_LATENCY_SECONDS.observe(latency_ms / 1000)
        return out


def get_flow(
    settings: Settings, champion: ChampionHolder, stop: threading.Event | None = None
) -> Dataflow:
    """Build the inference dataflow around a champion holder that already has a model."""
    flow = Dataflow("inference")
    tx_in = op.input(
        "transactions_in", flow,
        KafkaPartitionSource(
            settings.kafka, [settings.topics.transactions], stop, flow="inference"
        ),
    )  # KafkaRecord
    txs = op.filter_map("parse", tx_in, partial(parse_or_skip, rules=settings.validation))
    predictions = op.flat_map_batch("score", txs, BatchScorer(settings, champion))
    op.output("predictions_out", predictions, KafkaProducerSink(settings.kafka))
    return flow


def __getattr__(name: str) -> Any:
    # `python -m bytewax.run flows.inference:flow`: build from the environment on access.
    if name == "flow":
        from flows.service import prepare_inference
        from fti.settings import load_settings

        settings = load_settings()
        return get_flow(settings, prepare_inference(settings, threading.Event()))
    raise AttributeError(name)
