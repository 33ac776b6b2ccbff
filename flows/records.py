"""Small steps shared by flows: decoding records and routing bad ones to the DLQ."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fti import metrics
from fti.connectors.kafka.reader import KafkaRecord
from fti.flows.sinks import OutMessage
from fti.settings import load_settings

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decoded(Generic[T]):
    """A record that passed validation, with the event parsed from it."""

    record: KafkaRecord
    event: T


@dataclass(frozen=True)
class Rejected:
    """A record that failed validation, and why."""

    record: KafkaRecord
    error: str
    rule: str = "schema"  # "schema" for shape errors, else the name of the broken rule


#: Bytes of the original record a DLQ record keeps; the rest is cut, with its length and
#: sha256 recorded, so a DLQ record stays far below Kafka's message size limit.
DLQ_MAX_ORIGINAL_BYTES = 64 * 1024


def dlq_message(
    rejected: Rejected, dlq_topic: str, max_bytes: int = DLQ_MAX_ORIGINAL_BYTES
) -> OutMessage:
    """The DLQ record: original key, original bytes (base64, and as text when UTF-8; cut at
    `max_bytes`), their length and sha256, the reason and the rule it broke.

    >>> rec = KafkaRecord("payments", 0, 7, b"account-1", b"{oops", 0)
    >>> topic, key, value = dlq_message(Rejected(rec, "malformed JSON"), "payments.dlq")
    >>> body = json.loads(value)
    >>> body["offset"], body["original_text"], body["original_length"], body["truncated"]
    (7, '{oops', 5, False)
    >>> big = KafkaRecord("payments", 0, 8, None, b"x" * 100, 0)
    >>> body = json.loads(dlq_message(Rejected(big, "too big"), "dlq", max_bytes=10)[2])
    >>> body["original_text"], body["original_length"], body["truncated"]
    ('xxxxxxxxxx', 100, True)
    """
    record = rejected.record
    raw = record.value or b""
    kept = raw[:max_bytes]
    body = {
        "error": rejected.error[:1000],
        "rule": rejected.rule,
        "source_topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "original_length": len(raw),
        "original_sha256": hashlib.sha256(raw).hexdigest(),
        "truncated": len(kept) < len(raw),
        "original_b64": base64.b64encode(kept).decode(),
    }
    try:
        body["original_text"] = kept.decode()
    except UnicodeDecodeError:
        pass  # the base64 copy is lossless; text is only a convenience
    return dlq_topic, (record.key or b"")[:1024] or None, json.dumps(body).encode()


def guarded(
    validate: Callable[[KafkaRecord], Decoded[T] | Rejected],
) -> Callable[[KafkaRecord], Decoded[T] | Rejected]:
    """`validate`, with any exception it did not expect turned into a rejection (rule
    ``exception``) naming it, so one record can never stop a flow.

    >>> def broken(record): raise OverflowError("date value out of range")
    >>> rejected = guarded(broken)(KafkaRecord("t", 0, 1, None, b"{}", 0))
    >>> rejected.rule, rejected.error
    ('exception', 'OverflowError: date value out of range')
    """

    def step(record: KafkaRecord) -> Decoded[T] | Rejected:
        try:
            return validate(record)
        except Exception as ex:
            log.warning("%s: record %s rejected: %s: %s", getattr(validate, "__name__", "step"),
                        record.source, type(ex).__name__, ex)
            return Rejected(record, f"{type(ex).__name__}: {ex}", "exception")

    return step


def flow_from_environment(get_flow: Callable[..., Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that builds ``flow`` from the environment on first access.

    ``python -m bytewax.run fti.flows.features:flow`` then works while importing the module
    reads no settings.
    """

    def module_getattr(name: str) -> Any:
        if name == "flow":
            return get_flow(load_settings())
        raise AttributeError(name)

    return module_getattr


def to_dlq(flow: str, dlq_topic: str) -> Callable[[Rejected], OutMessage]:
    """The mapper of a flow's DLQ step: counts the record in `fti_dlq_events_total` and its
    rule in `fti_validation_violations_total` (policy "strict": it goes to the DLQ), then
    builds its DLQ message."""

    def step(rejected: Rejected) -> OutMessage:
        metrics.DLQ_EVENTS.labels(flow, rejected.record.topic).inc()
        metrics.RULE_VIOLATIONS.labels(flow, rejected.rule, "strict").inc()
        return dlq_message(rejected, dlq_topic)

    return step


class SkipLog:
    """Counts records a flow without a DLQ skips, and logs the first of each kind once.

    >>> skips = SkipLog("monitor")
    >>> skips.skip(KafkaRecord("predictions", 0, 4, None, b"[", 0), ValueError("bad"))
    >>> skips.seen
    {('predictions', 'ValueError')}
    """

    def __init__(self, flow: str) -> None:
        self.flow = flow
        self.seen: set[tuple[str, str]] = set()

    def skip(self, record: KafkaRecord, error: Exception) -> None:
        """Count `record` as skipped because of `error`."""
        metrics.RECORDS_SKIPPED.labels(self.flow, record.topic).inc()
        kind = (record.topic, type(error).__name__)
        if kind not in self.seen:
            self.seen.add(kind)
            log.warning("%s skips unusable records of %s, first at %s: %s: %s (counted in "
                        "fti_records_skipped_total; logged once)", self.flow, record.topic,
                        record.source, type(error).__name__, error)
