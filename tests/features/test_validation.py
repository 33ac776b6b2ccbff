"""Tests of per-group validation rules, rule-set policies and equivalence with parse_transaction."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from fti.errors import EventError
from fti.events import Transaction
from fti.features.fraud import CARD_FEATURES, TRANSACTIONS_RAW
from fti.features.validation import (
    AllowedValues,
    MaxEventTimeSkew,
    NotNull,
    Range,
    RuleError,
    RuleSet,
    Verdict,
    Violation,
    parse_transaction,
    rules_for_transactions,
)
from fti.settings import ValidationSettings
from fti.synthetic.transactions import StreamSpec, generate

NOW = datetime(2026, 1, 2, tzinfo=UTC)
SETTINGS = ValidationSettings()
AMOUNT = Range("amount", 0, 100)


@pytest.mark.parametrize("value", [0, 0.0, 100, 100.0, 50, np.float64(3.5), np.int64(7), None])
def test_range_accepts_bounds_inclusive_and_skips_null(value: Any) -> None:
    assert AMOUNT.check({"amount": value}, NOW) is None


def test_range_skips_a_missing_value() -> None:
    assert AMOUNT.check({}, NOW) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-0.01, "amount must be within [0, 100], got -0.01 (rule range:amount)"),
        (math.nextafter(100, math.inf), "got 100.00000000000001 (rule range:amount)"),
        (float("nan"), "amount must be a finite number within [0, 100], got nan"),
        (float("inf"), "amount must be a finite number within [0, 100], got inf"),
        (-math.inf, "amount must be a finite number within [0, 100], got -inf"),
        ("12", "amount must be a number within [0, 100], got str '12' (rule range:amount)"),
        (True, "amount must be a number within [0, 100], got bool True"),
    ],
)
def test_range_refuses_out_of_bounds_non_finite_and_non_numbers(value: Any, message: str) -> None:
    result = AMOUNT.check({"amount": value}, NOW)
    assert result is not None and message in result


def test_one_sided_ranges_say_which_side() -> None:
    assert Range("amount", 0).check({"amount": -3.2}, NOW) == (
        "amount must be >= 0, got -3.2 (rule range:amount)"
    )
    assert Range("amount", max=1e6).check({"amount": 2e6}, NOW) == (
        "amount must be <= 1e+06, got 2e+06 (rule range:amount)"
    )
    assert (
        Range("x").check({"x": math.nan}, NOW)
        == "x must be a finite number, got nan (rule range:x)"
    )
    assert Range("x").check({"x": -1e300}, NOW) is None


def test_range_with_min_above_max_is_refused() -> None:
    with pytest.raises(RuleError, match="rule range:a: min 2 is greater than max 1"):
        Range("a", 2, 1)


@pytest.mark.parametrize("value", [0, "", 0.0, float("nan"), False])
def test_not_null_accepts_any_present_value(value: Any) -> None:
    assert NotNull("x").check({"x": value}, NOW) is None


def test_not_null_refuses_none_and_missing() -> None:
    assert NotNull("x").check({"x": None}, NOW) == "x must not be null, got None (rule not_null:x)"
    assert NotNull("x").check({}, NOW) == (
        "x must not be null, got a missing value (rule not_null:x)"
    )


def test_allowed_values() -> None:
    rule = AllowedValues("currency", ["EUR", "USD"])
    assert rule.name == "allowed_values:currency"
    assert rule.check({"currency": "USD"}, NOW) is None
    assert rule.check({"currency": None}, NOW) is None
    assert rule.check({"currency": "eur"}, NOW) == (
        "currency must be one of ['EUR', 'USD'], got 'eur' (rule allowed_values:currency)"
    )
    flags = AllowedValues("flag", (0, 1))
    assert flags.check({"flag": 1}, NOW) is None
    assert "got True" in (flags.check({"flag": True}, NOW) or "")  # True == 1, but not a flag
    with pytest.raises(RuleError, match="values must not be empty"):
        AllowedValues("x", ())


@pytest.mark.parametrize(
    "ts",
    [
        NOW + timedelta(seconds=60),  # exactly at the limit
        NOW - timedelta(days=400),
        "2026-01-02T00:01:00Z",
        int((NOW + timedelta(seconds=60)).timestamp() * 1000),
        None,
    ],
)
def test_skew_accepts_times_up_to_the_limit(ts: Any) -> None:
    assert MaxEventTimeSkew(60, "ts").check({"ts": ts}, NOW) is None


def test_skew_refuses_a_time_just_past_the_limit() -> None:
    ts = NOW + timedelta(seconds=60, microseconds=1)
    message = MaxEventTimeSkew(60, "ts").check({"ts": ts}, NOW)
    assert message == (
        "ts must be at most 60s after now, got 60s after now: 2026-01-02T00:01:00.000001+00:00 "
        "(rule max_event_time_skew:ts)"
    )


def test_skew_refuses_unreadable_times_and_needs_an_aware_now() -> None:
    rule = MaxEventTimeSkew(60)
    assert rule.name == "max_event_time_skew:event_time"
    message = rule.check({"event_time": "yesterday"}, NOW) or ""
    assert message.startswith("event_time must be an event time, got 'yesterday'")
    assert message.endswith("(rule max_event_time_skew:event_time)")
    with pytest.raises(RuleError, match="now must be timezone-aware"):
        rule.check({"event_time": NOW}, datetime(2026, 1, 2))
    with pytest.raises(RuleError, match="seconds must be >= 0"):
        MaxEventTimeSkew(-1)


def test_strict_rejects_and_warn_keeps_the_row_with_the_same_violations() -> None:
    rules = [NotNull("amount"), Range("amount", 0, 100), AllowedValues("channel", ("pos",))]
    row = {"amount": -5.0, "channel": "atm"}
    strict = RuleSet(rules, policy="strict").evaluate(row, NOW)
    warn = RuleSet(rules, policy="warn").evaluate(row, NOW)
    assert not strict.ok and warn.ok
    assert strict.violations == warn.violations
    assert strict.rules == ("range:amount", "allowed_values:channel")
    assert strict.violations[0] == Violation(
        "range:amount", "amount must be within [0, 100], got -5 (rule range:amount)"
    )
    assert strict.reason.count("(rule ") == 2
    clean = RuleSet(rules).evaluate({"amount": 5.0, "channel": "pos"}, NOW)
    assert clean == Verdict(ok=True, violations=[])


def test_enforce_raises_an_event_error_naming_the_rule_for_the_dlq() -> None:
    rules = RuleSet([Range("amount", 0)])
    assert rules.enforce({"amount": 1.0}, NOW).ok
    with pytest.raises(EventError, match=r"amount must be >= 0, got -3.2 \(rule range:amount\)"):
        rules.enforce({"amount": -3.2}, NOW)
    warned = RuleSet([Range("amount", 0)], policy="warn").enforce({"amount": -3.2}, NOW)
    assert warned.ok and warned.rules == ("range:amount",)


def test_rule_sets_refuse_bad_policies_duplicates_and_naive_now() -> None:
    with pytest.raises(RuleError, match="policy must be 'strict' or 'warn', got 'lenient'"):
        RuleSet([], policy="lenient")  # type: ignore[arg-type]
    with pytest.raises(RuleError, match=r"repeated: \['range:a'\]"):
        RuleSet([Range("a", 0), Range("a", max=5)])
    with pytest.raises(RuleError, match="now must be timezone-aware"):
        RuleSet([NotNull("a")]).evaluate({"a": 1}, datetime(2026, 1, 1))


def test_rules_must_fit_their_group() -> None:
    rules_for_transactions(SETTINGS).check_group(TRANSACTIONS_RAW)
    with pytest.raises(RuleError) as err:
        rules_for_transactions(SETTINGS).check_group(CARD_FEATURES)
    message = str(err.value)
    assert "allowed_values:currency reads 'currency'" in message
    assert "max_event_time_skew:ts reads 'ts'" in message
    assert "range:amount" not in message  # card_features has an amount column


def _business_rows(spec: StreamSpec) -> list[tuple[bytes, dict[str, Any], Transaction]]:
    """Raw bytes, raw dict and model of each transaction that passes pydantic's schema."""
    rows = []
    for record in generate(spec):
        if record.kind != "transaction":
            continue
        try:
            data = json.loads(record.value)
            rows.append((record.value, data, Transaction.model_validate(data)))
        except (ValueError, TypeError, RecursionError, ValidationError):
            continue  # malformed: rejected before business rules apply
    return rows


def _edge_rows(settings: ValidationSettings, now: datetime) -> list[bytes]:
    """Hand-made rows at each rule's boundary, on both sides."""
    base = {
        "tx_id": "t",
        "card_id": "c",
        "merchant_id": "m",
        "amount": 1.0,
        "currency": "EUR",
        "country": "DE",
        "channel": "pos",
        "ts": now.isoformat(),
    }
    skew = timedelta(seconds=settings.max_future_skew_s)
    changes = [
        {"amount": 0},
        {"amount": settings.max_amount},
        {"amount": -0.0},
        {"amount": math.nextafter(settings.max_amount, math.inf)},
        {"amount": -1e-9},
        {"amount": float("inf")},
        {"currency": "JPY"},
        {"channel": "POS"},
        {"ts": (now + skew).isoformat()},
        {"ts": (now + skew + timedelta(milliseconds=1)).isoformat()},
    ]
    return [json.dumps({**base, **change}).encode() for change in changes]


def _parse_ok(raw: bytes, settings: ValidationSettings, now: datetime) -> tuple[bool, str]:
    try:
        parse_transaction(raw, settings, now=now)
    except EventError as ex:
        return False, str(ex)
    return True, ""


@pytest.mark.parametrize(
    "settings",
    [SETTINGS, ValidationSettings(max_amount=500.0, max_future_skew_s=0, currencies=("EUR",))],
)
def test_rule_set_decides_like_parse_transaction_on_the_synthetic_stream(
    settings: ValidationSettings,
) -> None:
    spec = StreamSpec(count=3000, bad_fraction=0.2, drift_at=1500)
    now = spec.start + timedelta(days=30)
    rules = rules_for_transactions(settings)
    rows = _business_rows(spec)
    rows += [
        (raw, json.loads(raw), Transaction.model_validate_json(raw))
        for raw in _edge_rows(settings, now)
    ]
    rejected = 0
    for raw, data, tx in rows:
        accepted, error = _parse_ok(raw, settings, now)
        for row in (data, tx.model_dump()):
            verdict = rules.evaluate(row, now)
            assert verdict.ok == accepted, (raw, error, verdict.reason)
        if not accepted:
            rejected += 1
            if error.startswith("malformed JSON"):
                continue  # NaN/Infinity literals are refused before any rule (not JSON)
            # both name the same field: parse's message starts with it, the rule reads it
            assert verdict.rules[0].split(":")[1] == error.split()[0], (error, verdict.rules)
    assert rejected >= 150  # nan/huge/negative amounts, future ts, unknown channels, edges


def test_warn_policy_counts_what_strict_would_reject() -> None:
    spec = StreamSpec(count=2000, bad_fraction=0.1)
    now = spec.start + timedelta(days=30)
    strict, warn = rules_for_transactions(SETTINGS), rules_for_transactions(SETTINGS, "warn")
    counts: Counter[str] = Counter()
    rejected = 0
    for _, data, _ in _business_rows(spec):
        verdict = warn.evaluate(data, now)
        assert verdict.ok
        counts.update(verdict.rules)
        rejected += not strict.evaluate(data, now).ok
    assert rejected > 0
    assert sum(counts.values()) >= rejected
    assert set(counts) <= {"range:amount", "allowed_values:channel", "max_event_time_skew:ts"}
    assert counts["range:amount"] > 0 and counts["max_event_time_skew:ts"] > 0
