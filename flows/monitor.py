"""Monitor flow: drift on input features and on the live error rate, label volume → retrain.

Predictions are joined with their labels by `tx_id` to get the live error stream; each
transaction gives one value per monitored feature (`MonitorConfig.features`: `amount`, as
log1p, and any of `channel_code`, `hour_of_day` from `fti.features.windows.event_features`);
every observation then meets one `RetrainPolicy` per model, which writes `retrain.requests`.
Each joined prediction also updates the model version's live accuracy, precision and recall
over a sliding window (`fti.flows.live_metrics`).
Run it with ``fti flow monitor`` or ``python -m bytewax.run fti.flows.monitor:flow``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from fti import metrics
from fti.connectors.kafka.reader import KafkaRecord
from fti.errors import ConfigError, EventError
from fti.events import (
    Prediction,
    RegistryEvent,
    RetrainRequest,
    Transaction,
    decode_event,
    parse_label,
)
from fti.features.validation import parse_transaction
from fti.features.windows import event_features
from fti.flows.expiry import expiring_flat_map
from fti.flows.live_metrics import LiveMetrics, LiveMetricsBook, export
from fti.flows.records import SkipLog, flow_from_environment
from fti.flows.sinks import KafkaProducerSink, OutMessage
from fti.flows.sources import KafkaPartitionSource
from fti.models.drift import (
    ChampionChanged,
    ErrorObserved,
    FeatureObserved,
    LabelSeen,
    Observation,
    RetrainPolicy,
    monitor_config,
    monitored_value,
)
from fti.settings import Settings

Joined = tuple[Prediction | None, bool | None]


_SKIPS = SkipLog("monitor")


MONITORABLE = tuple(event_features(0.0, "pos", datetime.fromtimestamp(0, UTC)))  # event-only


def monitored_features(settings: Settings) -> tuple[str, ...]:
    """The features the policy monitors; raise `ConfigError` for one no event provides.

    >>> monitored_features(Settings())
    ('amount',)
    """
    features = monitor_config(settings.monitor).features
    unknown = [f for f in features if f not in MONITORABLE]
    if unknown:
        raise ConfigError(
            f"monitor features {unknown} cannot be computed from a transaction; "
            f"choose from {list(MONITORABLE)}"
        )
    return features


def feature_values(tx: Transaction, features: Sequence[str]) -> list[FeatureObserved]:
    """One `FeatureObserved` per monitored feature of a transaction, on the monitored scale."""
    raw = event_features(tx.amount, tx.channel, tx.ts)
    return [FeatureObserved(tx.tx_id, monitored_value(f, raw[f]), f) for f in features]


def to_observations(
    record: KafkaRecord, settings: Settings, features: Sequence[str] | None = None
) -> list[tuple[str, Any]]:
    """Route a record by topic: `(tx_id, prediction | label)` to join, or a policy input.

    `features` defaults to `monitored_features(settings)` (pass it to skip the lookup).
    """
    topics = settings.topics
    try:
        if record.topic == topics.transactions:
            tx = parse_transaction(record.value or b"", settings.validation)
            names = monitored_features(settings) if features is None else features
            return [("policy", obs) for obs in feature_values(tx, names)]
        if record.topic == topics.labels:
            label = parse_label(record.value or b"")
            return [("policy", LabelSeen()), (label.tx_id, label.is_fraud)]
        if record.topic == topics.predictions:
            prediction = decode_event(Prediction, record.value or b"")
            return [(prediction.id, prediction)]
        event = decode_event(RegistryEvent, record.value or b"")
        if event.model == settings.training.model_name and event.event != "registered":
            return [("policy", ChampionChanged(event.version))]
    except EventError as ex:
        if record.topic in (topics.predictions, topics.registry_events):
            _SKIPS.skip(record, ex)  # the feature flow reports bad transactions and labels
    except Exception as ex:  # one record must never stop the monitor
        _SKIPS.skip(record, ex)
    return []


@dataclass(frozen=True)
class LabelledPrediction:
    """A prediction that met its label (`actual`: 1 for fraud)."""

    prediction: Prediction
    actual: int

    def error(self) -> ErrorObserved:
        """The policy's view: 1 when the predicted label was wrong."""
        p = self.prediction
        return ErrorObserved(p.id, p.version, int(p.label != self.actual))


def join_labelled(
    state: Joined | None, value: Prediction | bool
) -> tuple[Joined | None, list[LabelledPrediction]]:
    """Stateful, keyed by tx_id: emit the pair once both the prediction and label arrived."""
    prediction, label = state or (None, None)
    if isinstance(value, Prediction):
        prediction = value
    else:
        label = value
    if prediction is None or label is None:
        return (prediction, label), []
    return None, [LabelledPrediction(prediction, int(label))]


def join_prediction_label(
    state: Joined | None, value: Prediction | bool
) -> tuple[Joined | None, list[ErrorObserved]]:
    """Stateful, keyed by tx_id: emit the error once both the prediction and label arrived."""
    state, joined = join_labelled(state, value)
    return state, [pair.error() for pair in joined]


def update_live_metrics(settings: Settings) -> Any:
    """The live-metrics step's mapper: one `LiveMetricsBook` per model key, exported on
    every labelled prediction (sliding window of `monitor.live_window`, default 1000)."""
    size = settings.monitor.live_window

    def step(
        book: LiveMetricsBook | None, pair: LabelledPrediction
    ) -> tuple[LiveMetricsBook, LiveMetrics]:
        p = pair.prediction
        book = book or LiveMetricsBook(p.model, size=size)
        window = book.update(p.version, p.label, pair.actual)
        export(p.model, p.version, window)
        return book, window

    return step


def apply_policy(settings: Settings) -> Any:
    """The policy step's mapper: one `RetrainPolicy` per model key; counts each detection
    under its detector's name (`fti_drift_detections_total{model, detector}`)."""
    config = monitor_config(settings.monitor)

    def step(
        policy: RetrainPolicy | None, obs: Observation
    ) -> tuple[RetrainPolicy, list[RetrainRequest]]:
        policy = policy or RetrainPolicy(settings.training.model_name, config)
        seen = policy.detections_total
        requests = policy.observe(obs, now=time.time())
        new = policy.detections_total - seen
        for detection in policy.detections[-new:] if new else []:
            metrics.DRIFT_DETECTIONS.labels(policy.model, detection["detector"]).inc()
        for request in requests:
            metrics.RETRAIN_REQUESTS.labels(policy.model, request.reason).inc()
        return policy, requests

    return step


def get_flow(settings: Settings, stop: threading.Event | None = None) -> Dataflow:
    """Build the monitor dataflow; setting `stop` ends it gracefully."""
    t = settings.topics
    features = monitored_features(settings)
    flow = Dataflow("monitor")
    records = op.input(
        "monitor_in", flow,
        KafkaPartitionSource(
            settings.kafka, [t.transactions, t.labels, t.predictions, t.registry_events], stop,
            flow="monitor",
        ),
    )  # KafkaRecord
    routed = op.flat_map("route", records, lambda r: to_observations(r, settings, features))
    split = op.branch("to_policy", routed, lambda kv: kv[0] == "policy")
    joined = expiring_flat_map("join_labels", split.falses, join_labelled,
                               settings.monitor.join_ttl_s)
    # (tx_id, LabelledPrediction)
    errors = op.map("to_error", joined, lambda kv: (kv[0], kv[1].error()))
    by_served = op.key_on("key_served_model", op.map("labelled", joined, lambda kv: kv[1]),
                          lambda pair: pair.prediction.model)
    op.stateful_map("live_metrics", by_served, update_live_metrics(settings))
    # (model, LiveMetrics): exported as gauges inside the step, so the stream ends here
    observations = op.merge(
        "observations", op.map("policy_input", split.trues, lambda kv: kv[1]),
        op.map("error_input", errors, lambda kv: kv[1]),
    )  # Observation
    by_model = op.key_on("key_model", observations, lambda _: settings.training.model_name)
    requests = op.stateful_flat_map("retrain_policy", by_model, apply_policy(settings))
    out = op.map("to_kafka", requests, lambda kv: _request_message(kv[1], t.retrain_requests))
    op.output("requests_out", out, KafkaProducerSink(settings.kafka))
    return flow


def _request_message(request: RetrainRequest, topic: str) -> OutMessage:
    return topic, request.model.encode(), request.to_json()


__getattr__ = flow_from_environment(get_flow)
