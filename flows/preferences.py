"""Preference flow: preference pairs → validation → offline table ``preference_pairs``.

Invalid records go to the DLQ with the reason they were rejected. Rows carry their Kafka
source, so a replay after a crash appends nothing twice. Run it with
``python -m bytewax.run fti.flows.preferences:flow``.
"""

from __future__ import annotations

import threading
from typing import Any

import bytewax.operators as op
import pyarrow as pa
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from fti import metrics
from fti.connectors.kafka.reader import KafkaRecord
from fti.connectors.offline.store import LanceOfflineStore
from fti.errors import EventError
from fti.events import PreferenceEvent, parse_preference
from fti.features.definitions import PREFERENCES_TABLE
from fti.features.groups import SOURCE_FIELDS
from fti.flows.records import Decoded, Rejected, flow_from_environment, guarded, to_dlq
from fti.flows.sinks import KafkaProducerSink
from fti.flows.sources import KafkaPartitionSource
from fti.settings import Settings

#: Offline table of validated preference pairs, one row per record.
PREFERENCES_SCHEMA = pa.schema(
    [
        ("pair_id", pa.string()),
        ("prompt", pa.string()),
        ("response_a", pa.string()),
        ("response_b", pa.string()),
        ("winner", pa.string()),
        ("label", pa.int8()),  # A=0, B=1, tie=2
        ("event_time", pa.timestamp("us", tz="UTC")),
        *SOURCE_FIELDS,
    ]
)
_FLOW = "preferences"


def validate_preference(record: KafkaRecord) -> Decoded[PreferenceEvent] | Rejected:
    """Parse a raw preference record; a bad one becomes `Rejected` with the reason.

    >>> rec = KafkaRecord("preferences", 0, 3, b"p1", b'{"pair_id": "p1"', 0)
    >>> validate_preference(rec).error
    'malformed JSON: unexpected end of data: line 1 column 17 (char 16)'
    """
    try:
        return Decoded(record, parse_preference(record.value or b""))
    except EventError as ex:
        return Rejected(record, str(ex))


def preference_row(decoded: Decoded[PreferenceEvent]) -> dict[str, Any]:
    """The offline row of a valid pair, with its source coordinates."""
    event, record = decoded.event, decoded.record
    return {
        "pair_id": event.pair_id,
        "prompt": event.prompt,
        "response_a": event.response_a,
        "response_b": event.response_b,
        "winner": event.winner,
        "label": event.label,
        "event_time": event.ts,
        **record.source_columns(),
    }


class _PreferencePartition(StatelessSinkPartition[dict[str, Any]]):
    def __init__(self, settings: Settings) -> None:
        self._offline = LanceOfflineStore(settings.offline_location)

    def write_batch(self, items: list[dict[str, Any]]) -> None:
        """Append the rows not stored yet; count what was written."""
        written = self._offline.append_once(PREFERENCES_TABLE, PREFERENCES_SCHEMA, items)
        metrics.FEATURE_ROWS.labels(PREFERENCES_TABLE).inc(written)


class PreferenceSink(DynamicSink[dict[str, Any]]):
    """Appends preference rows to the offline table, skipping sources already stored."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _PreferencePartition:
        """One offline-store writer per worker."""
        return _PreferencePartition(self.settings)


def get_flow(
    settings: Settings, stop: threading.Event | None = None, topic: str | None = None
) -> Dataflow:
    """Build the preference dataflow; setting `stop` ends it gracefully (sinks flushed)."""
    topic = topic or settings.topics.preferences
    flow = Dataflow(_FLOW)
    records = op.input(
        "preferences_in", flow, KafkaPartitionSource(settings.kafka, [topic], stop, flow=_FLOW)
    )  # KafkaRecord
    checked = op.map("validate_preference", records, guarded(validate_preference))
    split = op.branch("preference_valid", checked, lambda x: isinstance(x, Decoded))
    rows = op.map("preference_row", split.trues, preference_row)  # offline row dict
    op.output("preference_pairs_out", rows, PreferenceSink(settings))
    dlq = op.map("to_dlq", split.falses, to_dlq(_FLOW, settings.topics.dlq))
    op.output("dlq_out", dlq, KafkaProducerSink(settings.kafka))
    return flow


__getattr__ = flow_from_environment(get_flow)
