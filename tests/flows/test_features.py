"""The feature flow against the real broker, SQLite and LanceDB: nothing lost, bad input to DLQ."""

from __future__ import annotations

import base64
import json
import uuid
from collections import Counter

import pytest

from fti.connectors.offline.store import LanceOfflineStore
from fti.connectors.online import open_online_store
from fti.errors import EventError
from fti.events import Transaction, decode_transaction
from fti.features.definitions import FEATURES_TABLE, LABELS_TABLE
from fti.features.training_data import read_offline
from fti.flows import features
from fti.ops.producer import StreamProducer
from fti.settings import OnlineStoreSettings, Settings, ValidationSettings
from fti.synthetic.transactions import StreamSpec, generate
from tests.support import read_topic, running_flow, wait_for

SPEC = StreamSpec(count=3000, drift_at=2000, bad_fraction=0.05, seed=11)


def test_every_event_lands_in_the_stores_or_the_dlq_with_a_reason(settings: Settings) -> None:
    records = list(generate(SPEC))
    valid = [r for r in records if r.kind == "transaction" and not r.bad]
    bad = Counter(r.value for r in records if r.kind == "transaction" and r.bad)
    producer = StreamProducer(settings, SPEC)
    producer.send(SPEC.count)
    producer.finish()
    offline = LanceOfflineStore(settings.offline_dir)

    with running_flow(lambda stop: features.get_flow(settings, stop)):
        wait_for(lambda: offline.count(FEATURES_TABLE) >= len(valid)
                 and offline.count(LABELS_TABLE) >= producer.counts.labels,
                 what="all valid transactions and labels in the offline store")

    dlq = [json.loads(m.value()) for m in read_topic(settings.kafka, settings.topics.dlq)]
    assert len(dlq) == bad.total() == producer.counts.bad_transactions
    assert Counter(base64.b64decode(d["original_b64"]) for d in dlq) == bad  # nothing lost
    assert all(d["error"] and d["source_topic"] == settings.topics.transactions for d in dlq)
    assert len({d["offset"] for d in dlq}) == len(dlq)
    rules = Counter(d["rule"] for d in dlq)
    assert {"schema", "range:amount", "allowed_values:channel", "max_event_time_skew:ts"} <= set(
        rules
    ), rules  # several different rules were broken, and each record names its rule
    assert all(d["rule"] in d["error"] for d in dlq if d["rule"] != "schema")

    snapshot = read_offline(settings.offline_dir)
    tx_ids = snapshot.features.column("tx_id").to_pylist()
    assert sorted(tx_ids) == sorted(json.loads(r.value)["tx_id"] for r in valid)
    assert snapshot.labels.num_rows == producer.counts.labels


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_online_store_holds_each_cards_newest_features(
    settings: Settings, backend: str, request: pytest.FixtureRequest
) -> None:
    online_settings = OnlineStoreSettings(backend=backend, key_prefix=f"test-{uuid.uuid4().hex}")
    if backend == "redis":  # the session's Redis (the SQLite case starts none)
        redis_url = request.getfixturevalue("redis_url")
        online_settings = online_settings.model_copy(update={"redis_url": redis_url})
    settings = settings.model_copy(update={"online": online_settings})
    spec = StreamSpec(count=800, seed=3)
    producer = StreamProducer(settings, spec)
    producer.send(spec.count)
    txs = [Transaction.model_validate_json(r.value) for r in generate(spec)
           if r.kind == "transaction"]
    newest: dict[str, Transaction] = {}
    for tx in txs:
        if tx.card_id not in newest or tx.ts >= newest[tx.card_id].ts:
            newest[tx.card_id] = tx
    online = open_online_store(settings)

    with running_flow(lambda stop: features.get_flow(settings, stop)):
        wait_for(lambda: online.count() == len(newest), what="one online row per card")
        wait_for(
            lambda: all(row.tx_id == newest[card].tx_id
                        for card, row in online.get_many(list(newest)).items()),
            what="the newest transaction of every card online",
        )

    rows = online.get_many(list(newest))
    card, row = next(iter(rows.items()))
    assert row.event_time == newest[card].ts.timestamp()
    assert row.features["tx_count_24h"] >= 1
    assert [entry[3] for entry in row.window][-1] == newest[card].tx_id
    if backend == "redis":
        online.clear()


def test_warn_policy_writes_rule_breakers_and_counts_them(settings: Settings) -> None:
    warn = settings.model_copy(update={"validation": ValidationSettings(policy="warn")})
    spec = StreamSpec(count=2000, bad_fraction=0.1, seed=12)
    producer = StreamProducer(warn, spec)
    producer.send(spec.count)
    shape_errors = sum(
        1 for r in generate(spec) if r.kind == "transaction" and r.bad and not _decodes(r.value)
    )
    kept = spec.count - shape_errors
    assert 0 < shape_errors < producer.counts.bad_transactions  # both kinds are in the stream
    offline = LanceOfflineStore(warn.offline_dir)
    before = _violations()

    with running_flow(lambda stop: features.get_flow(warn, stop)):
        wait_for(lambda: offline.count(FEATURES_TABLE) >= kept, what="rule breakers written too")
        wait_for(lambda: len(read_topic(warn.kafka, warn.topics.dlq, 0.2)) >= shape_errors,
                 what="shape errors in the DLQ")

    dlq = [json.loads(m.value()) for m in read_topic(warn.kafka, warn.topics.dlq)]
    assert offline.count(FEATURES_TABLE) == kept
    assert len(dlq) == shape_errors and {d["rule"] for d in dlq} == {"schema"}
    assert _violations() - before == producer.counts.bad_transactions - shape_errors


def _decodes(raw: bytes) -> bool:
    try:
        decode_transaction(raw)
    except EventError:
        return False
    return True


def _violations() -> float:
    from prometheus_client import REGISTRY

    return sum(
        sample.value
        for metric in REGISTRY.collect() if metric.name == "fti_validation_violations"
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels.get("policy") == "warn"
    )
