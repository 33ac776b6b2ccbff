"""The preference flow against the real broker and LanceDB: valid pairs stored, bad to the DLQ."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from fti.connectors.kafka.clients import make_producer
from fti.connectors.kafka.reader import KafkaRecord
from fti.connectors.offline.store import LanceOfflineStore
from fti.events import parse_preference
from fti.flows import preferences
from fti.flows.preferences import PREFERENCES_TABLE
from fti.flows.records import Decoded
from fti.models.trainers.lora import read_preference_pairs
from fti.settings import Settings
from fti.synthetic.preferences import PreferenceSpec, generate_preferences
from tests.support import read_topic, running_flow, wait_for


def _create_topic(settings: Settings) -> str:
    topic = f"{settings.topics.preferences}-{uuid.uuid4().hex[:10]}"
    admin = AdminClient(settings.kafka.client_config())
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(10)
    return topic


def test_valid_pairs_land_in_the_offline_table_and_bad_ones_in_the_dlq(settings: Settings) -> None:
    topic = _create_topic(settings)
    records = list(generate_preferences(PreferenceSpec(count=300, seed=21, bad_fraction=0.08)))
    valid = [r for r in records if not r.bad]
    bad = {r.value for r in records if r.bad}
    producer = make_producer(settings.kafka)
    for record in records:
        producer.produce(topic, key=record.key, value=record.value)
    assert producer.flush(30) == 0
    offline = LanceOfflineStore(settings.offline_dir)

    with running_flow(lambda stop: preferences.get_flow(settings, stop, topic=topic)):
        wait_for(lambda: offline.count(PREFERENCES_TABLE) >= len(valid),
                 what="every valid pair in the offline table")

    dlq = [json.loads(m.value()) for m in read_topic(settings.kafka, settings.topics.dlq)]
    assert len(dlq) == len(bad) > 0
    assert {base64.b64decode(d["original_b64"]) for d in dlq} == bad  # nothing lost
    assert all(d["error"] and d["source_topic"] == topic for d in dlq)
    errors = "\n".join(d["error"] for d in dlq)
    for reason in ("malformed JSON", "missing field", "winner must be one of", "must not be empty"):
        assert reason in errors, reason

    table, _version = read_preference_pairs(settings.offline_dir)
    assert offline.count(PREFERENCES_TABLE) == len(valid) == table.num_rows
    events = {e.pair_id: e for e in (parse_preference(r.value) for r in valid)}
    rows = {row["pair_id"]: row for row in table.to_pylist()}
    assert rows.keys() == events.keys()
    for pair_id, row in rows.items():
        event = events[pair_id]
        assert (row["prompt"], row["response_a"], row["response_b"], row["winner"]) == (
            event.prompt, event.response_a, event.response_b, event.winner)
        assert row["label"] == event.label and row["event_time"] == event.ts
        assert row["source_topic"] == topic and row["source_offset"] >= 0


def test_a_replayed_batch_adds_no_rows(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    records = list(generate_preferences(PreferenceSpec(count=20, seed=3)))
    rows = [preferences.preference_row(Decoded(KafkaRecord("preferences", 0, i, r.key, r.value, 0),
                                               parse_preference(r.value)))
            for i, r in enumerate(records)]
    sink = preferences.PreferenceSink(settings).build("out", 0, 1)
    sink.write_batch(rows[:15])
    preferences.PreferenceSink(settings).build("out", 0, 1).write_batch(rows[10:])  # a replay
    assert LanceOfflineStore(settings.offline_dir).count(PREFERENCES_TABLE) == 20
