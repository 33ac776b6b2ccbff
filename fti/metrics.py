"""Every Prometheus metric fti exports, in one catalogue, and the `/metrics` server.

Labels are bounded: flow names, topics, detector names, reasons, model names and versions.

>>> FEATURE_WRITE_SECONDS.labels(store="online").observe(0.001)
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from fti.health import HealthServer, serve_health_and_metrics

EVENTS_IN = Counter("fti_events_in_total", "Records read from Kafka.", ["flow", "topic"])
DLQ_EVENTS = Counter("fti_dlq_events_total", "Invalid records sent to the DLQ.", ["flow", "topic"])
RULE_VIOLATIONS = Counter(
    "fti_validation_violations_total", "Validation rules broken, by rule and policy.",
    ["flow", "rule", "policy"],
)
CONSUMER_LAG = Gauge(
    "fti_consumer_lag_records",
    "Records between a partition's high watermark and the next offset a flow will read.",
    ["flow", "topic", "partition"],
)
FEATURE_ROWS = Counter("fti_feature_rows_total", "Feature rows written.", ["store"])
FEATURE_WRITE_SECONDS = Histogram(
    "fti_feature_write_seconds", "Time to write one batch to a feature store.", ["store"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
FEATURE_FRESHNESS_EVENT_TIME = Gauge(
    "fti_feature_newest_event_time_seconds", "Event time of the newest feature row written."
)
FEATURE_FRESHNESS = Gauge(
    "fti_feature_freshness_seconds",
    "Seconds from the newest online value's event time to now (0 while the store is empty).",
)
DRIFT_DETECTIONS = Counter(
    "fti_drift_detections_total", "Drift detections by detector.", ["model", "detector"]
)
RETRAIN_REQUESTS = Counter(
    "fti_retrain_requests_total", "Retrain requests written.", ["model", "reason"]
)
TRAINING_SECONDS = Histogram(
    "fti_training_duration_seconds", "Wall time of one training job.", ["model"],
    buckets=(1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
)
TRAINING_RUNS = Counter(
    "fti_training_runs_total", "Training jobs by outcome.", ["model", "outcome"]
)
TRAINING_JOB_EVENTS = Counter(
    "fti_training_job_events_total", "Training job state changes.", ["model", "state"]
)
CHAMPION_VERSION = Gauge("fti_champion_version", "Version serving as champion.", ["model"])
CHAMPION_PROMOTED_TIMESTAMP = Gauge(
    "fti_champion_promoted_timestamp_seconds",
    "When the champion alias last moved to the version served (Unix seconds).", ["model"],
)
PREDICTIONS = Counter("fti_predictions_total", "Predictions published.", ["model", "version"])
PREDICTION_LATENCY_SECONDS = Histogram(
    "fti_prediction_latency_seconds",
    "From the event being read to its prediction being handed to the producer.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
LIVE_ACCURACY = Gauge(
    "fti_live_accuracy", "Accuracy over the last N labelled predictions.", ["model", "version"]
)
LIVE_PRECISION = Gauge(
    "fti_live_precision", "Precision (class 1 = positive) over the last N labelled predictions.",
    ["model", "version"],
)
LIVE_RECALL = Gauge(
    "fti_live_recall", "Recall (class 1 = positive) over the last N labelled predictions.",
    ["model", "version"],
)
LIVE_F1 = Gauge(
    "fti_live_f1",
    "F1 over the last N labelled predictions: of class 1 (binary), macro over classes "
    "(multiclass, preference).", ["model", "version"],
)
LIVE_MAE = Gauge(
    "fti_live_mae", "Mean absolute error over the last N labelled predictions (regression).",
    ["model", "version"],
)
LIVE_RMSE = Gauge(
    "fti_live_rmse", "Root mean squared error over the last N labelled predictions "
    "(regression).", ["model", "version"],
)
LABELLED_PREDICTIONS = Counter(
    "fti_labelled_predictions_total", "Predictions joined with their label.", ["model", "version"]
)
SHADOW_PREDICTIONS = Counter(
    "fti_shadow_predictions_total", "Challenger predictions written to predictions.shadow.",
    ["model", "version"],
)
SHADOW_AGREEMENTS = Counter(
    "fti_shadow_agreements_total", "Shadow predictions whose label equals the champion's.",
    ["model", "version"],
)
SHADOW_ERRORS = Counter(
    "fti_shadow_errors_total", "Shadow-scoring failures (challenger load or predict).",
    ["model", "stage"],
)
MODEL_SWAPS = Counter("fti_model_swaps_total", "Hot swaps of the serving model.", ["model"])
RECORDS_SKIPPED = Counter(
    "fti_records_skipped_total",
    "Records a flow or service without a DLQ could not use (malformed or unexpected), skipped.",
    ["flow", "topic"],
)
PRODUCE_FAILURES = Counter(
    "fti_produce_failures_total",
    "Messages Kafka did not acknowledge (delivery failed or timed out).",
    ["topic"],
)


def serve_metrics(port: int, host: str = "127.0.0.1") -> HealthServer:
    """Serve `/metrics`, `/healthz` and `/readyz` on host:port (loopback by default); 0 = off.

    Call `set_ready(...)` on the returned server once the service is ready.
    """
    return serve_health_and_metrics(port, host)
