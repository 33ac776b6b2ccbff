"""Tests of event parsing: accepted time formats, every rejection rule, and JSON round trips."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fti.errors import EventError
from fti.events import Label, Prediction, RegistryEvent, RetrainRequest, Transaction, parse_label
from fti.features.validation import parse_transaction
from fti.settings import ValidationSettings

RULES = ValidationSettings()
NOW = datetime(2026, 1, 2, tzinfo=UTC)
GOOD: dict[str, Any] = {
    "tx_id": "t1",
    "card_id": "c1",
    "merchant_id": "m1",
    "amount": 12.5,
    "currency": "EUR",
    "country": "DE",
    "channel": "pos",
    "ts": "2026-01-01T00:00:00Z",
}
MISSING = object()


def _raw(**changes: Any) -> bytes:
    """GOOD with some fields changed (or removed when set to MISSING), as JSON bytes."""
    data = {k: v for k, v in {**GOOD, **changes}.items() if v is not MISSING}
    return json.dumps(data).encode()


def _parse(raw: bytes | str) -> Transaction:
    return parse_transaction(raw, RULES, now=NOW)


@pytest.mark.parametrize(
    "ts",
    [
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00z",
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T01:00:00+01:00",
        "2025-12-31T19:00:00-05:00",
        "2026-01-01T00:00:00.000Z",
        1767225600000,
        1767225600000.0,
    ],
)
def test_accepts_rfc3339_and_epoch_ms_as_the_same_utc_instant(ts: Any) -> None:
    tx = _parse(_raw(ts=ts))
    assert tx.ts == datetime(2026, 1, 1, tzinfo=UTC)
    assert tx.ts.utcoffset() == timedelta(0)


def test_accepts_a_good_transaction_field_by_field() -> None:
    tx = _parse(_raw())
    assert (tx.tx_id, tx.card_id, tx.merchant_id) == ("t1", "c1", "m1")
    assert (tx.amount, tx.currency, tx.country, tx.channel) == (12.5, "EUR", "DE", "pos")


def test_accepts_integer_amount_and_zero() -> None:
    assert _parse(_raw(amount=7)).amount == 7.0
    assert _parse(_raw(amount=0)).amount == 0.0


def test_accepts_str_input_as_well_as_bytes() -> None:
    assert _parse(_raw().decode()).tx_id == "t1"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"tx_id": 1', "malformed JSON"),
        (b"", "empty event"),
        (b'{"tx_id": "\xff\xfe"}', "not UTF-8"),
        ('{"tx_id": "t"}'.encode("utf-16"), "not UTF-8"),  # json.loads alone would accept it
        (b"[1, 2]", "must be a JSON object, got list"),
        (b'"text"', "must be a JSON object, got str"),
        (b"null", "must be a JSON object, got NoneType"),
        (b"3", "must be a JSON object, got int"),
    ],
)
def test_rejects_undecodable_payloads(raw: bytes, message: str) -> None:
    with pytest.raises(EventError, match=message):
        _parse(raw)


@pytest.mark.parametrize(
    "field", ["tx_id", "card_id", "merchant_id", "amount", "currency", "country", "channel", "ts"]
)
def test_missing_field_is_named(field: str) -> None:
    with pytest.raises(EventError) as info:
        _parse(_raw(**{field: MISSING}))
    assert str(info.value) == f"missing field {field!r}"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"amount": "12.5"}, r"^amount: .*must be a number, got str"),
        ({"amount": True}, r"^amount: .*must be a number, got bool"),
        ({"amount": None}, r"^amount: .*must be a number, got NoneType"),
        ({"card_id": ["c1"]}, r"^card_id: .*valid string"),
        ({"tx_id": ""}, r"^tx_id: .*at least 1 character"),
        ({"currency": "EURO"}, r"^currency: "),
        ({"ts": True}, r"^ts: .*got a boolean"),
        ({"ts": "yesterday"}, r"^ts: .*not RFC 3339"),
        ({"ts": -1}, r"^ts: .*out of range"),
    ],
)
def test_rejects_wrong_types_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(EventError, match=message):
        _parse(_raw(**changes))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_rejects_non_finite_amount(literal: str) -> None:
    # NaN and Infinity are not JSON, and 1e400 overflows a double: refused when decoding.
    raw = _raw().decode().replace('"amount": 12.5', f'"amount": {literal}')
    assert literal in raw
    with pytest.raises(EventError, match="malformed JSON"):
        _parse(raw)


@pytest.mark.parametrize("amount", [-0.01, -3.2, RULES.max_amount * 1.0001, 1e12])
def test_rejects_amount_outside_the_allowed_range(amount: float) -> None:
    with pytest.raises(EventError, match=r"amount must be within \[0, 1e\+06\], got"):
        _parse(_raw(amount=amount))


def test_accepts_amount_at_the_maximum() -> None:
    assert _parse(_raw(amount=RULES.max_amount)).amount == RULES.max_amount


def test_rejects_unknown_currency_and_channel_listing_the_allowed_ones() -> None:
    allowed = r"\['EUR', 'USD', 'GBP'\]"
    with pytest.raises(EventError, match=rf"currency must be one of {allowed}, got 'JPY'"):
        _parse(_raw(currency="JPY"))
    with pytest.raises(EventError, match=r"channel must be one of .*, got 'web'"):
        _parse(_raw(channel="web"))


@pytest.mark.parametrize("ts", ["2026-01-01T00:00:00", "2026-01-01"])
def test_rejects_a_time_without_offset(ts: str) -> None:
    with pytest.raises(EventError, match=r"^ts: .*needs an offset"):
        _parse(_raw(ts=ts))


def test_rejects_a_time_beyond_the_future_skew() -> None:
    too_late = NOW + timedelta(seconds=RULES.max_future_skew_s + 1)
    message = r"ts must be at most 3600s after now, got 3601s .*rule max_event_time_skew:ts"
    with pytest.raises(EventError, match=message):
        _parse(_raw(ts=too_late.isoformat()))


@pytest.mark.parametrize("inside_s", [0, 1, 60])
def test_accepts_a_time_just_inside_the_future_skew(inside_s: int) -> None:
    ts = NOW + timedelta(seconds=RULES.max_future_skew_s - inside_s)
    assert _parse(_raw(ts=ts.isoformat())).ts == ts


def test_future_skew_is_relative_to_now_and_configurable() -> None:
    strict = ValidationSettings(max_future_skew_s=0)
    ts = NOW + timedelta(seconds=1)
    with pytest.raises(EventError, match="at most 0s after now, got 1s"):
        parse_transaction(_raw(ts=ts.isoformat()), strict, now=NOW)
    assert parse_transaction(_raw(ts=ts.isoformat()), strict, now=ts).ts == ts


def test_parse_label_good() -> None:
    label = parse_label(b'{"tx_id": "t1", "is_fraud": true, "ts": 1767225600000}')
    assert label == Label(tx_id="t1", is_fraud=True, ts=datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{", "malformed JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"tx_id": "t1", "ts": 1767225600000}', "missing field 'is_fraud'"),
        (b'{"tx_id": "t1", "is_fraud": "maybe", "ts": 1767225600000}', "^is_fraud: "),
        (b'{"tx_id": "t1", "is_fraud": false, "ts": "2026-01-01T00:00:00"}', "^ts: "),
    ],
)
def test_parse_label_bad(raw: bytes, message: str) -> None:
    with pytest.raises(EventError, match=message):
        parse_label(raw)


@pytest.mark.parametrize(
    "event",
    [
        Transaction.model_validate(GOOD),
        Label(tx_id="t1", is_fraud=False, ts="2026-01-01T03:00:00+02:00"),
        Prediction(id="t1", score=0.9, label=1, model="m", version=3, latency_ms=1.5,
                   ts=1767225600123),
        RetrainRequest(model="m", reason="drift", evidence={"detector": "x", "n": 3},
                       requested_at="2026-01-01T00:00:00Z"),
        RegistryEvent(model="m", version=2, event="promoted", alias="champion", uri="file:///x",
                      sha256="ab" * 32),
    ],
)
def test_events_round_trip_through_json(event: Any) -> None:
    raw = event.to_json()
    assert isinstance(raw, bytes)
    assert type(event).model_validate_json(raw) == event


def test_transaction_round_trip_through_parse() -> None:
    tx = _parse(_raw(ts="2026-01-01T05:30:00+05:30"))
    assert _parse(tx.to_json()) == tx
    assert json.loads(tx.to_json())["ts"].startswith("2026-01-01T00:00:00")
