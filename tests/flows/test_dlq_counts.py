"""The DLQ step counts each rejected record by topic and by the rule it broke."""

from __future__ import annotations

import json

from fti import metrics
from fti.connectors.kafka.reader import KafkaRecord
from fti.flows.records import Rejected, to_dlq


def _value(counter: object, *labels: str) -> float:
    return counter.labels(*labels)._value.get()  # type: ignore[attr-defined]


def test_a_rejection_is_counted_by_topic_and_by_rule() -> None:
    step = to_dlq("count-test", "payments.dlq")
    before = (_value(metrics.DLQ_EVENTS, "count-test", "payments"),
              _value(metrics.RULE_VIOLATIONS, "count-test", "range:amount", "strict"))
    record = KafkaRecord("payments", 0, 3, b"k", b'{"amount": -1}', 0)

    topic, _, value = step(Rejected(record, "amount must be >= 0, got -1", "range:amount"))

    assert topic == "payments.dlq" and json.loads(value)["rule"] == "range:amount"
    assert _value(metrics.DLQ_EVENTS, "count-test", "payments") == before[0] + 1
    assert _value(metrics.RULE_VIOLATIONS, "count-test", "range:amount", "strict") == (
        before[1] + 1)
