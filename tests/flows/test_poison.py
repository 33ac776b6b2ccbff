"""Every flow survives poison records between valid ones, produced by a foreign client.

kafka-python (a pure-Python Kafka protocol implementation) produces valid events, every
class of poison in `tests.poison`, then valid events again, into the topics the flows read.
Every valid event is stored or scored, every poison is in the DLQ (or counted as skipped where
a flow has no DLQ), and the flows keep running until asked to stop.
"""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kafka import KafkaProducer

from fti import metrics
from fti.connectors.offline.store import LanceOfflineStore
from fti.features.definitions import FEATURES_TABLE, LABELS_TABLE, PREFERENCES_TABLE
from fti.flows import features, inference, monitor, preferences
from fti.flows.champion import prepare_inference
from fti.models.jobs.trainer_service import RegistryEventPublisher
from fti.models.registry import CHAMPION, ModelRegistry
from fti.settings import Settings
from tests.flows.test_inference import predictions, register_model
from tests.poison import POISON
from tests.support import read_topic, running_flow, wait_for

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _transaction(i: int) -> bytes:
    return json.dumps({"tx_id": f"tx-{i}", "card_id": f"card-{i % 17}", "merchant_id": "m1",
                       "amount": 10.0 + i, "currency": "EUR", "country": "DE",
                       "channel": "pos", "ts": (T0 + timedelta(seconds=i)).isoformat()}).encode()


def _label(i: int) -> bytes:
    return json.dumps({"tx_id": f"tx-{i}", "is_fraud": i % 7 == 0,
                       "ts": (T0 + timedelta(seconds=i + 60)).isoformat()}).encode()


def _preference(i: int) -> bytes:
    return json.dumps({"pair_id": f"p-{i}", "prompt": f"question {i}", "response_a": "Sure.",
                       "response_b": "No.", "winner": "A",
                       "ts": (T0 + timedelta(seconds=i)).isoformat()}).encode()


def _produce(settings: Settings, topic: str, valid: list[bytes]) -> None:
    """Half the valid events, every poison, the other half: one burst, so they share
    fetched batches."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, linger_ms=50,
                             max_request_size=4 << 20)
    half = len(valid) // 2
    for value in [*valid[:half], *POISON.values(), *valid[half:]]:
        producer.send(topic, value=value, key=b"k")
    producer.flush(30)
    producer.close()


def _dlq(settings: Settings) -> list[dict]:
    return [json.loads(m.value()) for m in read_topic(settings.kafka, settings.topics.dlq,
                                                      settle_s=0.5)]


def test_feature_flow_stores_every_valid_event_and_dead_letters_every_poison(
    settings: Settings,
) -> None:
    _produce(settings, settings.topics.transactions, [_transaction(i) for i in range(400)])
    _produce(settings, settings.topics.labels, [_label(i) for i in range(100)])
    offline = LanceOfflineStore(settings.offline_dir)

    with running_flow(lambda stop: features.get_flow(settings, stop)):
        wait_for(lambda: offline.count(FEATURES_TABLE) >= 400
                 and offline.count(LABELS_TABLE) >= 100, what="every valid event stored")
        wait_for(lambda: len(_dlq(settings)) >= 2 * len(POISON), what="every poison dead-lettered")
        # still running: a later valid event is processed too
        _produce(settings, settings.topics.transactions, [_transaction(1000)])
        wait_for(lambda: offline.count(FEATURES_TABLE) >= 401, what="the flow still running")

    assert offline.count(FEATURES_TABLE) == 401 and offline.count(LABELS_TABLE) == 100
    dlq = _dlq(settings)
    assert len(dlq) == 3 * len(POISON)  # transactions twice (two bursts), labels once
    assert all(d["error"] and d["rule"] for d in dlq)
    originals = {base64.b64decode(d["original_b64"]) for d in dlq if not d["truncated"]}
    assert originals | {p[:65536] for p in POISON.values()} == {p[:65536] for p in
                                                                 POISON.values()}
    assert max(len(json.dumps(d)) for d in dlq) < 300_000  # bounded, whatever came in


def test_preference_flow_stores_every_valid_pair_and_dead_letters_every_poison(
    settings: Settings,
) -> None:
    _produce(settings, settings.topics.preferences, [_preference(i) for i in range(60)])
    offline = LanceOfflineStore(settings.offline_dir)

    with running_flow(lambda stop: preferences.get_flow(settings, stop)):
        wait_for(lambda: offline.count(PREFERENCES_TABLE) >= 60, what="every valid pair stored")
        wait_for(lambda: len(_dlq(settings)) >= len(POISON), what="every poison dead-lettered")

    assert offline.count(PREFERENCES_TABLE) == 60 and len(_dlq(settings)) == len(POISON)


def test_monitor_skips_poison_on_every_topic_and_keeps_running(settings: Settings) -> None:
    topics = settings.topics
    skipped_before = sum(metrics.RECORDS_SKIPPED.labels("monitor", t)._value.get()
                         for t in (topics.predictions, topics.registry_events))
    for topic in (topics.transactions, topics.labels, topics.predictions,
                  topics.registry_events):
        _produce(settings, topic, [])
    settings = settings.model_copy(update={"monitor": settings.monitor.model_copy(
        update={"bootstrap_labels": 150})})
    requests = lambda: read_topic(settings.kafka, topics.retrain_requests, settle_s=0.3,  # noqa: E731
                                  first_record_s=0.5)

    with running_flow(lambda stop: monitor.get_flow(settings, stop)):
        wait_for(lambda: sum(metrics.RECORDS_SKIPPED.labels("monitor", t)._value.get()
                             for t in (topics.predictions, topics.registry_events))
                 - skipped_before >= 2 * len(POISON), what="every poison counted as skipped")
        # alive and still deciding: enough valid labels make it ask for a model
        _produce(settings, topics.labels, [_label(i) for i in range(200)])
        wait_for(lambda: len(requests()) >= 1, what="a retrain request after the poison")


def test_inference_scores_every_valid_event_between_poison(
    settings: Settings, tmp_path: Path
) -> None:
    register_model(settings, tmp_path, seed=1)
    stop = threading.Event()
    holder = prepare_inference(settings, stop)
    # poison on registry.events too: the watcher thread must survive it and still swap
    _produce(settings, settings.topics.registry_events, [])
    _produce(settings, settings.topics.transactions, [_transaction(i) for i in range(300)])

    with running_flow(lambda stop: inference.get_flow(settings, holder, stop), stop):
        wait_for(lambda: len(predictions(settings)) >= 300, what="a prediction per valid event")
        version = register_model(settings, tmp_path, seed=2)
        registry = ModelRegistry(settings.registry_dir)
        RegistryEventPublisher(settings)(
            registry.event(settings.inference.model_name, version, "promoted", CHAMPION))
        _produce(settings, settings.topics.transactions, [_transaction(i) for i in range(300, 400)])
        wait_for(lambda: any(p["version"] == version for p in predictions(settings)),
                 what="the swap after poison on registry.events")
        wait_for(lambda: len(predictions(settings)) >= 400, what="every later event scored")

    scored = [p["id"] for p in predictions(settings)]
    assert sorted(scored) == sorted(f"tx-{i}" for i in range(400))  # each once, no poison
