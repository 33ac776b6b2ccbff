"""A declared stream's decoder (`fti.features.project.decode.StreamDecoder`): the time formats
it accepts, and a rejection naming the rule and the field for every kind of bad event. The
stream is declared here like a user would (a payment stream with a range, an enum, a bool, a
one-hour future skew); fti's own topics' events round-trip through JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fti.events import Prediction, RegistryEvent, RetrainRequest
from fti.features.project import Field, Stream
from fti.features.project.decode import Event, Rejection, StreamDecoder

PAYMENTS = Stream(
    "payments", topic="payments", key="account", id="payment_id", event_time="ts",
    max_future_skew="1h",
    fields=[Field("payment_id"), Field("account"), Field("amount", "float", min=0, max=1000),
            Field("currency", values=["EUR", "USD"]), Field("refund", "bool"),
            Field("items", "int", required=False), Field("ts", "timestamp")],
)
DECODER = StreamDecoder(PAYMENTS)
NOW = datetime(2026, 1, 2, tzinfo=UTC)
GOOD: dict[str, Any] = {"payment_id": "p1", "account": "a1", "amount": 12.5, "currency": "EUR",
                        "refund": False, "items": 3, "ts": "2026-01-01T00:00:00Z"}
MISSING = object()


def _raw(**changes: Any) -> bytes:
    """GOOD with some fields changed (or removed when set to MISSING), as JSON bytes."""
    return json.dumps({k: v for k, v in {**GOOD, **changes}.items() if v is not MISSING}).encode()


def _decode(raw: bytes, now: datetime = NOW) -> Event | Rejection:
    return DECODER.decode(raw, now.timestamp())


def _rejected(raw: bytes) -> Rejection:
    outcome = _decode(raw)
    assert isinstance(outcome, Rejection), outcome
    assert outcome.rule and outcome.reason
    return outcome


@pytest.mark.parametrize("ts", [
    "2026-01-01T00:00:00Z", "2026-01-01T00:00:00z", "2026-01-01T00:00:00+00:00",
    "2026-01-01T01:00:00+01:00", "2025-12-31T19:00:00-05:00", "2026-01-01T00:00:00.000Z",
    1767225600000, 1767225600000.0,
])
def test_rfc3339_and_epoch_ms_are_the_same_utc_instant(ts: Any) -> None:
    event = _decode(_raw(ts=ts))
    assert isinstance(event, Event), event
    assert event.time == datetime(2026, 1, 1, tzinfo=UTC).timestamp()


def test_a_good_event_field_by_field() -> None:
    event = _decode(_raw())
    assert isinstance(event, Event)
    assert {k: event.values[k] for k in ("payment_id", "account", "amount", "currency",
                                        "refund", "items")} == {
        "payment_id": "p1", "account": "a1", "amount": 12.5, "currency": "EUR",
        "refund": False, "items": 3}
    assert _decode(_raw(amount=7)).values["amount"] == 7.0  # an int where a float is declared
    assert _decode(_raw(items=MISSING)).values["items"] is None  # optional


@pytest.mark.parametrize("raw", [
    b'{"payment_id": 1', b"", b'{"payment_id": "\xff\xfe"}',
    '{"payment_id": "p"}'.encode("utf-16"), b"[1, 2]", b'"text"', b"null", b"3",
])
def test_undecodable_payloads_are_rejected_by_schema(raw: bytes) -> None:
    assert _rejected(raw).rule == "schema"


@pytest.mark.parametrize("field", ["payment_id", "account", "amount", "currency", "refund", "ts"])
def test_a_missing_required_field_is_named(field: str) -> None:
    rejection = _rejected(_raw(**{field: MISSING}))
    assert rejection.rule == f"required:{field}" and field in rejection.reason


@pytest.mark.parametrize(("changes", "field"), [
    ({"amount": "lots"}, "amount"), ({"amount": True}, "amount"),
    ({"account": ["a1"]}, "account"), ({"refund": "maybe"}, "refund"), ({"items": 2.5}, "items"),
    ({"ts": True}, "ts"), ({"ts": "yesterday"}, "ts"), ({"ts": "2026-01-01T00:00:00"}, "ts"),
    ({"ts": "2026-01-01"}, "ts"),
])
def test_a_wrong_type_is_rejected_naming_the_field(changes: dict[str, Any], field: str) -> None:
    rejection = _rejected(_raw(**changes))
    assert field in rejection.rule or field in rejection.reason, rejection


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_rejected(literal: str) -> None:
    raw = _raw().decode().replace('"amount": 12.5', f'"amount": {literal}')
    assert literal in raw
    _rejected(raw.encode())


@pytest.mark.parametrize("amount", [-0.01, 1000.01, 1e12])
def test_a_value_outside_its_range_is_rejected_by_the_range_rule(amount: float) -> None:
    rejection = _rejected(_raw(amount=amount))
    assert rejection.rule == "range:amount" and f"got {amount:g}" in rejection.reason
    assert isinstance(_decode(_raw(amount=1000)), Event)  # the bound itself is inside


def test_a_value_outside_its_enum_is_rejected_listing_the_allowed_ones() -> None:
    rejection = _rejected(_raw(currency="JPY"))
    assert rejection.rule == "enum:currency" and "EUR" in rejection.reason
    assert "JPY" in rejection.reason


def test_future_skew_is_relative_to_now() -> None:
    too_late = NOW + timedelta(hours=1, seconds=1)
    assert _rejected(_raw(ts=too_late.isoformat())).rule == "future"
    inside = NOW + timedelta(hours=1)
    assert isinstance(_decode(_raw(ts=inside.isoformat())), Event)
    assert isinstance(_decode(_raw(ts=too_late.isoformat()), now=too_late), Event)


@pytest.mark.parametrize("event", [
    Prediction(id="t1", score=0.9, label=1, model="m", version=3, latency_ms=1.5,
               ts=1767225600123),
    RetrainRequest(model="m", reason="drift", evidence={"detector": "x", "n": 3},
                   requested_at="2026-01-01T00:00:00Z"),
    RegistryEvent(model="m", version=2, event="promoted", alias="champion", uri="file:///x",
                  sha256="ab" * 32),
])
def test_fti_events_round_trip_through_json(event: Any) -> None:
    raw = event.to_json()
    assert isinstance(raw, bytes)
    assert type(event).model_validate_json(raw) == event
