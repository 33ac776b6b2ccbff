"""Feature flow: transactions → validation → per-card windows → online + offline stores.

Invalid transactions and labels go to the DLQ with the rule they broke; labels go to the
offline label table. Run it with ``fti flow features`` or
``python -m bytewax.run fti.flows.features:flow``.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from functools import partial
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from fti import metrics
from fti.connectors.kafka.reader import KafkaRecord
from fti.connectors.offline.store import LanceOfflineStore
from fti.connectors.online import OnlineRow, freshness_seconds, open_online_store
from fti.errors import EventError
from fti.events import Label, Transaction, decode_transaction, parse_label
from fti.features.definitions import (
    FEATURE_COLUMNS,
    FEATURES_SCHEMA,
    FEATURES_TABLE,
    LABELS_SCHEMA,
    LABELS_TABLE,
)
from fti.features.validation import transaction_rules
from fti.features.windows import (
    CardWindow,
    WindowEntry,
    entries_to_json,
    event_features,
    update_window,
)
from fti.flows.expiry import expiring_map
from fti.flows.records import Decoded, Rejected, flow_from_environment, guarded, to_dlq
from fti.flows.sinks import KafkaProducerSink
from fti.flows.sources import KafkaPartitionSource
from fti.settings import Settings, ValidationSettings

FeatureRow = dict[str, Any]


def validate_transaction(record: KafkaRecord, rules: ValidationSettings) -> Decoded | Rejected:
    """Decode and check a raw transaction against the rule set.

    Under policy `strict` a record that breaks a rule becomes `Rejected`, naming the rule;
    under `warn` it is kept and the broken rules are counted.
    """
    try:
        tx = decode_transaction(record.value or b"")
    except EventError as ex:
        return Rejected(record, str(ex))
    verdict = transaction_rules(rules, rules.policy).evaluate(tx.model_dump(), datetime.now(UTC))
    for rule in verdict.rules:
        metrics.RULE_VIOLATIONS.labels("features", rule, rules.policy).inc()
    if not verdict.ok:
        return Rejected(record, verdict.reason, verdict.rules[0])
    return Decoded(record, tx)


def validate_label(record: KafkaRecord) -> Decoded | Rejected:
    """Parse a raw label; a bad one becomes `Rejected`."""
    try:
        return Decoded(record, parse_label(record.value or b""))
    except EventError as ex:
        return Rejected(record, str(ex))


def card_features(
    window: CardWindow | None, decoded: Decoded[Transaction], max_entries: int | None = None
) -> tuple[CardWindow, FeatureRow]:
    """Stateful step: update the card's window and build the offline/online feature row."""
    tx, record = decoded.event, decoded.record
    entry = WindowEntry(tx.ts.timestamp(), tx.amount, tx.country, tx.tx_id)
    window, window_values = update_window(window or CardWindow(), entry, max_entries)
    row: FeatureRow = {
        "tx_id": tx.tx_id,
        "card_id": tx.card_id,
        "event_time": tx.ts,
        **event_features(tx.amount, tx.channel, tx.ts),
        **window_values,
        **record.source_columns(),
        "_window": tuple(window.entries),  # a snapshot: JSON only for rows that go online
    }
    return window, row


def label_row(decoded: Decoded[Label]) -> dict[str, Any]:
    """Offline label row with its source coordinates."""
    label, record = decoded.event, decoded.record
    return {
        "tx_id": label.tx_id,
        "is_fraud": int(label.is_fraud),
        "event_time": label.ts,
        **record.source_columns(),
    }


class _FeatureStorePartition(StatelessSinkPartition[tuple[str, FeatureRow]]):
    def __init__(self, settings: Settings) -> None:
        self._online = open_online_store(settings)
        metrics.FEATURE_FRESHNESS.set_function(lambda: freshness_seconds(self._online) or 0.0)
        self._offline = LanceOfflineStore(settings.offline_location)

    def write_batch(self, items: list[tuple[str, FeatureRow]]) -> None:
        latest: dict[str, FeatureRow] = {}
        offline_rows = []
        for card_id, row in items:
            offline_rows.append({k: v for k, v in row.items() if k != "_window"})
            # Rows of a card arrive in processing order, and each later window knows more
            # (a late event adds to the window even though its own event time is older).
            latest[card_id] = row
        # Offline first: if the process dies between the two writes, the replay after
        # recovery skips the stored offline rows and rewrites the online ones (idempotent).
        start = time.perf_counter()
        self._offline.append_once(FEATURES_TABLE, FEATURES_SCHEMA, offline_rows)
        metrics.FEATURE_WRITE_SECONDS.labels("offline").observe(time.perf_counter() - start)
        start = time.perf_counter()
        self._online.upsert(_online_row(row) for row in latest.values())
        metrics.FEATURE_WRITE_SECONDS.labels("online").observe(time.perf_counter() - start)
        metrics.FEATURE_ROWS.labels("offline").inc(len(offline_rows))
        metrics.FEATURE_ROWS.labels("online").inc(len(latest))
        newest = max(row["event_time"] for row in latest.values())
        metrics.FEATURE_FRESHNESS_EVENT_TIME.set(newest.timestamp())

    def close(self) -> None:
        self._online.close()


def _online_row(row: FeatureRow) -> OnlineRow:
    """The card's online row: features of the transaction last processed, and its window,
    stamped with the window's newest event time so a late event's update is kept."""
    return OnlineRow(
        entity=row["card_id"],
        event_time=max(entry.ts for entry in row["_window"]),
        tx_id=row["tx_id"],
        features={name: row[name] for name in FEATURE_COLUMNS},
        window=entries_to_json(row["_window"]),
    )


class FeatureStoreSink(DynamicSink[tuple[str, FeatureRow]]):
    """One write path: each batch goes to the offline and the online store from one step."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _FeatureStorePartition:
        return _FeatureStorePartition(self.settings)


class _LabelPartition(StatelessSinkPartition[dict[str, Any]]):
    def __init__(self, settings: Settings) -> None:
        self._offline = LanceOfflineStore(settings.offline_location)

    def write_batch(self, items: list[dict[str, Any]]) -> None:
        self._offline.append_once(LABELS_TABLE, LABELS_SCHEMA, items)
        metrics.FEATURE_ROWS.labels("labels").inc(len(items))


class LabelSink(DynamicSink[dict[str, Any]]):
    """Appends label rows to the offline label table."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _LabelPartition:
        return _LabelPartition(self.settings)


def get_flow(settings: Settings, stop: threading.Event | None = None) -> Dataflow:
    """Build the feature dataflow; setting `stop` ends it gracefully (sinks flushed)."""
    topics = settings.topics
    for topic in (topics.transactions, topics.labels):
        metrics.DLQ_EVENTS.labels("features", topic)  # exported at 0 before the first one
    flow = Dataflow("features")
    tx_in = op.input(
        "transactions_in", flow,
        KafkaPartitionSource(settings.kafka, [topics.transactions], stop, flow="features"),
    )  # KafkaRecord
    checked = op.map(
        "validate", tx_in, guarded(partial(validate_transaction, rules=settings.validation))
    )
    tx_split = op.branch("tx_valid", checked, lambda x: isinstance(x, Decoded))
    by_card = op.key_on("key_card", tx_split.trues, lambda d: d.event.card_id)
    rows = expiring_map(
        "card_windows", by_card,
        partial(card_features, max_entries=settings.state.max_window_entries),
        settings.state.entity_ttl_s,
    )  # (card_id, FeatureRow)
    op.output("feature_store_out", rows, FeatureStoreSink(settings))

    labels_in = op.input(
        "labels_in", flow,
        KafkaPartitionSource(settings.kafka, [topics.labels], stop, flow="features"),
    )  # KafkaRecord
    labels_checked = op.map("validate_label", labels_in, guarded(validate_label))
    label_split = op.branch("label_valid", labels_checked, lambda x: isinstance(x, Decoded))
    op.output("labels_out", op.map("label_row", label_split.trues, label_row), LabelSink(settings))

    rejected = op.merge("rejected", tx_split.falses, label_split.falses)  # Rejected
    dlq = op.map("to_dlq", rejected, to_dlq("features", topics.dlq))
    op.output("dlq_out", dlq, KafkaProducerSink(settings.kafka))
    return flow


__getattr__ = flow_from_environment(get_flow)

