"""Small steps shared by flows: decoding records and routing bad ones to the DLQ."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fti.connectors.kafka.reader import KafkaRecord
from fti.flows.sinks import OutMessage

T = TypeVar("T")


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


def dlq_message(rejected: Rejected, dlq_topic: str) -> OutMessage:
    """The DLQ record: original key, original bytes (base64, and as text when UTF-8), the
    reason and the rule it broke.

    >>> rec = KafkaRecord("transactions", 0, 7, b"card-1", b"{oops", 0)
    >>> topic, key, value = dlq_message(Rejected(rec, "malformed JSON"), "transactions.dlq")
    >>> json.loads(value)["offset"], json.loads(value)["original_text"]
    (7, '{oops')
    """
    record = rejected.record
    raw = record.value or b""
    body = {
        "error": rejected.error,
        "rule": rejected.rule,
        "source_topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "original_b64": base64.b64encode(raw).decode(),
    }
    try:
        body["original_text"] = raw.decode()
    except UnicodeDecodeError:
        pass  # the base64 copy is lossless; text is only a convenience
    return dlq_topic, record.key, json.dumps(body).encode()


def flow_from_environment(get_flow: Callable[..., Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that builds ``flow`` from the environment on first access.

    ``python -m bytewax.run fti.flows.features:flow`` then works while importing the module
    reads no settings.
    """

    def module_getattr(name: str) -> Any:
        if name == "flow":
            from fti.settings import load_settings

            return get_flow(load_settings())
        raise AttributeError(name)

    return module_getattr


def to_dlq(flow: str, dlq_topic: str) -> Callable[[Rejected], OutMessage]:
    """The mapper of a flow's DLQ step: counts the record in `fti_dlq_events_total`, then
    builds its DLQ message."""
    from fti import metrics

    def step(rejected: Rejected) -> OutMessage:
        metrics.DLQ_EVENTS.labels(flow, rejected.record.topic).inc()
        return dlq_message(rejected, dlq_topic)

    return step
