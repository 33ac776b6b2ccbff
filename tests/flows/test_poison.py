"""Every flow of a project survives poison records between valid ones, produced by a foreign
client: the feature engine (`materialize`) of the fraud and preference examples, the fraud
example's inference flow and its monitor.

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
from prometheus_client import REGISTRY

from fti.connectors.offline.store import LanceOfflineStore
from fti.features.project.tables import label_table
from fti.flows import inference, materialize, monitor
from fti.models.jobs.trainer_service import RegistryEventPublisher
from fti.settings import MonitorSettings, Settings
from tests.champions import backfill_history, train
from tests.example_projects import ExampleProject, example_project
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


def _dlq(settings: Settings, example: ExampleProject, stream: str) -> list[dict]:
    return [json.loads(m.value()) for m in read_topic(settings.kafka, example.dlq_topic(stream),
                                                      settle_s=0.5)]


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _predictions(settings: Settings) -> list[dict]:
    return [json.loads(m.value()) for m in
            read_topic(settings.kafka, settings.topics.predictions, settle_s=0.3)]


def test_materialize_stores_every_valid_event_and_dead_letters_every_poison(
    settings: Settings, tmp_path: Path,
) -> None:
    example = example_project("fraud", settings, tmp_path / "fraud")
    table = example.project.groups["card_activity"].table_name
    labels = label_table(example.project.labels["is_fraud"])
    assert example.dlq_topic("transactions") == example.dlq_topic("labels")  # one DLQ
    _produce(settings, example.topics["transactions"], [_transaction(i) for i in range(400)])
    _produce(settings, example.topics["labels"], [_label(i) for i in range(100)])
    offline = LanceOfflineStore(settings.offline_location)

    with running_flow(lambda stop: materialize.get_flow(settings, example.project, stop)):
        wait_for(lambda: offline.count(table) >= 400 and offline.count(labels) >= 100,
                 what="every valid event stored")
        wait_for(lambda: len(_dlq(settings, example, "transactions")) >= 2 * len(POISON),
                 what="every poison dead-lettered")
        # still running: a later valid event is processed too
        _produce(settings, example.topics["transactions"], [_transaction(1000)])
        wait_for(lambda: offline.count(table) >= 401, what="the flow still running")

    assert offline.count(table) == 401 and offline.count(labels) == 100
    dlq = _dlq(settings, example, "transactions")
    assert len(dlq) == 3 * len(POISON)  # transactions twice (two bursts), labels once
    assert all(d["error"] and d["rule"] for d in dlq)
    originals = {base64.b64decode(d["original_b64"]) for d in dlq if not d["truncated"]}
    assert originals | {p[:65536] for p in POISON.values()} == {p[:65536] for p in
                                                                 POISON.values()}
    assert max(len(json.dumps(d)) for d in dlq) < 300_000  # bounded, whatever came in


def test_materialize_of_the_preference_example_stores_every_valid_pair(
    settings: Settings, tmp_path: Path,
) -> None:
    example = example_project("preferences", settings, tmp_path / "preferences")
    table = example.project.groups["pair_text"].table_name
    winners = label_table(example.project.labels["winner"])
    _produce(settings, example.topics["preferences"], [_preference(i) for i in range(60)])
    offline = LanceOfflineStore(settings.offline_location)

    with running_flow(lambda stop: materialize.get_flow(settings, example.project, stop)):
        wait_for(lambda: offline.count(table) >= 60 and offline.count(winners) >= 60,
                 what="every valid pair stored")
        wait_for(lambda: len(_dlq(settings, example, "preferences")) >= len(POISON),
                 what="every poison dead-lettered")

    assert offline.count(table) == 60 and offline.count(winners) == 60
    assert len(_dlq(settings, example, "preferences")) == len(POISON)


def test_monitor_skips_poison_on_every_topic_and_keeps_running(
    settings: Settings, tmp_path: Path,
) -> None:
    example = example_project("fraud", settings, tmp_path / "fraud")
    topics = [example.topics["transactions"], example.topics["labels"],
              settings.topics.predictions, settings.topics.registry_events]
    skipped_before = {t: _sample("fti_records_skipped_total", flow="monitor", topic=t)
                      for t in topics}
    for topic in topics:
        _produce(settings, topic, [])
    settings = settings.model_copy(update={"monitor": MonitorSettings(bootstrap_labels=150)})
    requests = lambda: read_topic(settings.kafka, settings.topics.retrain_requests,  # noqa: E731
                                  settle_s=0.3, first_record_s=0.5)

    def skipped() -> dict[str, float]:
        return {t: _sample("fti_records_skipped_total", flow="monitor", topic=t)
                - skipped_before[t] for t in topics}

    with running_flow(lambda stop: monitor.get_flow(settings, example.project, stop)):
        wait_for(lambda: all(n >= len(POISON) for n in skipped().values()),
                 what="every poison counted as skipped")
        assert requests() == []
        # alive and still deciding: enough valid labels make it ask for a first model
        _produce(settings, example.topics["labels"], [_label(i) for i in range(200)])
        wait_for(lambda: len(requests()) >= 1, what="a retrain request after the poison")

    # each topic's poison counted once per record: the labels' second burst too
    assert skipped() == {**dict.fromkeys(topics, float(len(POISON))),
                         example.topics["labels"]: 2.0 * len(POISON)}
    asked = {json.loads(m.value())["model"] for m in
             read_topic(settings.kafka, settings.topics.retrain_requests, settle_s=0.5)}
    assert "fraud-xgb" in asked, asked


def test_inference_scores_every_valid_event_between_poison(
    settings: Settings, tmp_path: Path
) -> None:
    example = example_project("fraud", settings, tmp_path / "fraud")
    backfill_history(settings, example.project, tmp_path / "history")
    first = train(settings, example.project, "fraud-xgb").version
    topic, events = example.topics["transactions"], settings.topics.registry_events
    read_before = _sample("fti_events_in_total", flow="inference", topic=topic)
    watcher_skips = _sample("fti_records_skipped_total", flow="registry-watcher", topic=events)
    skipped_before = _sample("fti_records_skipped_total", flow="inference", topic=topic)
    stop = threading.Event()
    holders = inference.prepare(settings, example.project, None, stop)
    assert holders is not None and set(holders) == {"fraud-xgb"}  # fraud-mlp is not served
    # poison on registry.events too: the watcher thread must survive it and still swap
    _produce(settings, events, [])
    _produce(settings, topic, [_transaction(i) for i in range(300)])

    build = lambda stop: inference.get_flow(settings, example.project, holders, stop)  # noqa: E731
    with running_flow(build, stop):
        wait_for(lambda: len(_predictions(settings)) >= 300, what="a prediction per valid event")
        assert {p["version"] for p in _predictions(settings)} == {first}
        second = train(settings, example.project, "fraud-xgb",
                       publish=RegistryEventPublisher(settings)).version
        _produce(settings, topic, [_transaction(i) for i in range(300, 400)])
        wait_for(lambda: any(p["version"] == second for p in _predictions(settings)),
                 what="the swap after poison on registry.events")
        wait_for(lambda: len(_predictions(settings)) >= 400, what="every later event scored")

    predictions = _predictions(settings)
    scored = [p["id"] for p in predictions]
    assert sorted(scored) == sorted(f"tx-{i}" for i in range(400))  # each once, no poison
    assert {p["model"] for p in predictions} == {"fraud-xgb"}
    assert _sample("fti_events_in_total", flow="inference", topic=topic) - read_before == (
        400 + 2 * len(POISON))  # every record read, the poison too
    assert _sample("fti_records_skipped_total", flow="registry-watcher",
                   topic=events) - watcher_skips == len(POISON)
    # the poison is the feature engine's to dead-letter; inference counts what it skips
    assert _sample("fti_records_skipped_total", flow="inference",
                   topic=topic) - skipped_before == 2 * len(POISON)
