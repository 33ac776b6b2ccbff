"""The training job end to end on a temporary LanceDB offline store and registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
import pytest

from fti.errors import FtiError
from fti.events import RegistryEvent
from fti.features.definitions import (
    FEATURE_COLUMNS,
    FEATURES_SCHEMA,
    FEATURES_TABLE,
    LABELS_SCHEMA,
    LABELS_TABLE,
)
from fti.features.training_data import build_dataset, load_dataset_record, rows_sha256
from fti.models.devices import select_device
from fti.models.evaluation.metrics import evaluate_binary
from fti.models.jobs.training_job import FRAUD_INPUTS, run_training_job
from fti.models.registry import ModelRegistry, sha256_file
from fti.models.trainers.xgboost_model import (
    features_matrix,
    labels_vector,
    load_model,
    predict_scores,
    save_model,
    train_xgboost,
)
from fti.settings import Settings, TrainingSettings

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ROWS = 3000


def _batch(first: int, n: int, seed: int, learnable: bool = True) -> tuple[pa.Table, pa.Table]:
    """n transactions (ids first..first+n-1, 30 s apart) and their labels, 1-60 min later.

    Learnable: fraud iff amount > 100 and channel_code 1, with 3 % of labels flipped.
    Not learnable: fraud is a 10 % coin flip.
    """
    rng = np.random.default_rng(seed)
    index = np.arange(first, first + n)
    times = [T0 + timedelta(seconds=30 * int(i)) for i in index]
    amount = rng.lognormal(4.0, 1.0, n)
    channel = rng.integers(0, 3, n).astype(np.float64)
    features = {name: rng.normal(size=n) for name in FEATURE_COLUMNS}
    features |= {"amount": amount, "channel_code": channel}
    if learnable:
        fraud = (amount > 100) & (channel == 1)
        fraud ^= rng.random(n) < 0.03
    else:
        fraud = rng.random(n) < 0.1
    tx_ids = [f"tx-{i}" for i in index]
    source = {"source_partition": np.zeros(n, dtype=np.int32), "source_offset": index,
              "source_topic_id": [None] * n}
    feature_rows = pa.Table.from_pydict(
        {
            "tx_id": tx_ids,
            "card_id": [f"card-{i % 97}" for i in index],
            "event_time": times,
            **features,
            "source_topic": ["transactions"] * n,
            **source,
        },
        schema=FEATURES_SCHEMA,
    )
    delays = rng.integers(60, 3600, n)
    label_rows = pa.Table.from_pydict(
        {
            "tx_id": tx_ids,
            "is_fraud": fraud.astype(np.int8),
            "event_time": [
                t + timedelta(seconds=int(d)) for t, d in zip(times, delays, strict=True)
            ],
            "source_topic": ["labels"] * n,
            **source,
        },
        schema=LABELS_SCHEMA,
    )
    return feature_rows, label_rows


def _append(offline: Path, features: pa.Table, labels: pa.Table) -> None:
    db = lancedb.connect(str(offline))
    for name, rows, schema in (
        (FEATURES_TABLE, features, FEATURES_SCHEMA),
        (LABELS_TABLE, labels, LABELS_SCHEMA),
    ):
        try:
            db.open_table(name).add(rows)
        except ValueError:
            db.create_table(name, data=rows, schema=schema)


def _settings(tmp_path: Path, **training: object) -> Settings:
    defaults = {"device": "cpu", "n_estimators": 100, "window_labels": ROWS}
    return Settings(data_dir=tmp_path, training=TrainingSettings(**(defaults | training)))


@pytest.fixture
def store(tmp_path: Path) -> Settings:
    settings = _settings(tmp_path)
    features, labels = _batch(0, ROWS, seed=1)
    _append(settings.offline_dir, features, labels)
    _append(settings.offline_dir, features.slice(0, 200), labels.slice(0, 50))  # a replay
    return settings


def test_first_run_promotes_and_publishes(store: Settings) -> None:
    events: list[RegistryEvent] = []
    result = run_training_job(store, reason="manual", publish=events.append)

    assert result.version == 1 and result.promoted and result.reasons == []
    assert result.metrics["roc_auc"] > 0.8 and result.champion_metrics is None
    assert result.device == "cpu" and result.dataset_version == 1
    registry = ModelRegistry(store.registry_dir)
    assert registry.alias("fraud-xgb") == 1
    version = registry.get("fraud-xgb", 1)
    assert version.promoted and version.gates.passed and version.reason == "manual"
    plots = {"roc.png", "pr.png", "confusion.png", "loss.png", "slices.png", "importance.png"}
    assert set(version.files) == {"model.ubj", "signature.json", "model_card.md"} | plots
    card = (store.registry_dir / "fraud-xgb" / "1" / "model_card.md").read_text()
    assert "![ROC](roc.png)" in card and "pr_auc" in card.lower()
    for name, digest in version.files.items():
        assert sha256_file(store.registry_dir / "fraud-xgb" / "1" / name) == digest
    assert [(e.event, e.version, e.alias) for e in events] == [
        ("registered", 1, None),
        ("promoted", 1, "champion"),
    ]
    assert events[1].sha256 == registry.version_sha256("fraud-xgb", 1)
    assert events[1].uri == registry.uri("fraud-xgb", 1)

    record = load_dataset_record(store.data_dir / "datasets", 1)
    assert record.rows == ROWS and record.view == "fraud_v1"  # the replay was deduplicated
    assert record.splits["test"].rows == 600 and version.dataset["version"] == 1
    card = registry.artifact_path("fraud-xgb", 1, "model_card.md").read_text()
    assert "# Model card: fraud-xgb v1" in card and "Passed" in card and "`amount`" in card


def test_worse_candidate_is_not_promoted(store: Settings) -> None:
    run_training_job(store)
    features, labels = _batch(ROWS, ROWS, seed=2, learnable=False)
    _append(store.offline_dir, features, labels)
    events: list[RegistryEvent] = []

    result = run_training_job(store, reason="drift", publish=events.append)

    assert result.version == 2 and not result.promoted
    assert result.metrics["roc_auc"] < 0.7 and result.champion_version == 1
    assert result.champion_metrics is not None and result.champion_metrics["rows"] == 600
    assert any("< min 0.75" in reason for reason in result.reasons)
    registry = ModelRegistry(store.registry_dir)
    assert registry.alias("fraud-xgb") == 1
    assert not registry.get("fraud-xgb", 2).promoted
    assert [e.event for e in events] == ["registered"]
    assert "not promoted" in registry.artifact_path("fraud-xgb", 2, "model_card.md").read_text()


def test_dataset_and_model_are_reproducible(store: Settings) -> None:
    result = run_training_job(store, progress=True)
    record = load_dataset_record(store.data_dir / "datasets", result.dataset_version)
    more_features, more_labels = _batch(ROWS, 500, seed=3)
    _append(store.offline_dir, more_features, more_labels)  # later writes must not matter

    rebuilt = build_dataset(store.offline_dir, store.training, record.table_versions)
    assert rebuilt.record.rows_sha256 == record.rows_sha256
    assert rebuilt.record.splits == record.splits
    registry = ModelRegistry(store.registry_dir)
    booster = load_model(registry.artifact_path("fraud-xgb", result.version, "model.ubj"))
    test = rebuilt.split.test
    assert rows_sha256(test) == record.splits["test"].rows_sha256
    X = features_matrix(test, FEATURE_COLUMNS)
    metrics = evaluate_binary(labels_vector(test, FRAUD_INPUTS.label), predict_scores(booster, X))
    assert metrics == registry.get("fraud-xgb", result.version).metrics


def test_saved_model_predicts_like_the_trained_one(store: Settings, tmp_path: Path) -> None:
    split = build_dataset(store.offline_dir, store.training).split
    booster = train_xgboost(split, store.training, "cpu", FRAUD_INPUTS)
    X = features_matrix(split.test, FEATURE_COLUMNS)
    before = predict_scores(booster, X)
    loaded = load_model(save_model(booster, tmp_path / "model.ubj"))
    np.testing.assert_array_equal(predict_scores(loaded, X), before)
    assert loaded.feature_names == list(FEATURE_COLUMNS)


def test_too_little_data_is_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    features, labels = _batch(0, 60, seed=4)
    _append(settings.offline_dir, features, labels)
    with pytest.raises(FtiError, match="need at least 50"):
        run_training_job(settings)
    assert not settings.registry_dir.exists()


def test_single_class_train_split_is_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    features, labels = _batch(0, 400, seed=5)
    labels = labels.set_column(1, "is_fraud", pa.array(np.zeros(400, dtype=np.int8)))
    _append(settings.offline_dir, features, labels)
    with pytest.raises(FtiError, match="no fraud labels"):
        run_training_job(settings)


def test_select_device() -> None:
    assert select_device("auto") in ("cpu", "cuda", "xla", "mps")
    assert select_device(" CPU ") == "cpu"
    with pytest.raises(FtiError, match=r"one of \['auto', 'cpu', 'cuda', 'xla', 'mps'\]"):
        select_device("tpu")


def test_an_undelivered_registry_event_is_reported_not_called_published(store: Settings) -> None:
    from fti.connectors.kafka.publisher import DeliveryError

    delivered: list[RegistryEvent] = []

    def publish(event: RegistryEvent) -> None:
        if event.event == "promoted":
            raise DeliveryError("Kafka did not acknowledge 1 message(s)", {"registry.events": 1})
        delivered.append(event)

    result = run_training_job(store, reason="manual", publish=publish)

    assert result.version == 1 and result.promoted  # registered and promoted all the same
    assert result.published == ["registered"] and [e.event for e in delivered] == ["registered"]
    assert result.unpublished is not None and "['promoted']" in result.unpublished
    assert "NOT published" in result.unpublished
