"""The synthetic preference stream: deterministic, valid, learnable, and bad records rejected."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from fti.errors import EventError
from fti.events import MAX_TEXT_CHARS, WINNERS, parse_preference
from fti.synthetic.preferences import (
    POLITE_OPENINGS,
    RUDE_REPLIES,
    PreferenceSpec,
    generate_preferences,
)

VALID = {"pair_id": "p-1", "prompt": "How?", "response_a": "Like this.", "response_b": "No.",
         "winner": "A", "ts": "2026-01-01T00:00:00Z"}


def test_same_spec_same_bytes_and_seed_changes_them() -> None:
    spec = PreferenceSpec(count=200, seed=4, bad_fraction=0.1)
    assert list(generate_preferences(spec)) == list(generate_preferences(spec))
    other = list(generate_preferences(PreferenceSpec(count=200, seed=5, bad_fraction=0.1)))
    assert [r.value for r in other] != [r.value for r in generate_preferences(spec)]


def test_valid_records_parse_and_winners_follow_the_text() -> None:
    records = list(generate_preferences(PreferenceSpec(count=600, seed=2, tie_fraction=0.2)))
    events = [parse_preference(r.value) for r in records]
    assert [r.index for r in records] == list(range(600)) and not any(r.bad for r in records)
    assert [r.key for r in records] == [e.pair_id.encode() for e in events]
    assert len({e.pair_id for e in events}) == 600
    assert all(a.ts < b.ts for a, b in zip(events, events[1:], strict=False))
    counts = Counter(e.winner for e in events)
    assert set(counts) == set(WINNERS) and 0.12 < counts["tie"] / 600 < 0.28, counts

    def good(text: str) -> bool:
        return text.startswith(POLITE_OPENINGS)

    for e in events:  # the winner is decidable from the text alone
        expected = "tie" if good(e.response_a) == good(e.response_b) else (
            "A" if good(e.response_a) else "B")
        assert e.winner == expected, e
        assert e.label == WINNERS.index(e.winner)
    rude = [e for e in events if any(r in e.response_a + e.response_b for r in RUDE_REPLIES)]
    assert rude, "some bad responses are rude, others off topic"


def test_bad_records_are_rejected_with_a_reason() -> None:
    records = list(generate_preferences(PreferenceSpec(count=400, seed=9, bad_fraction=0.15)))
    bad = [r for r in records if r.bad]
    assert 30 < len(bad) < 90
    reasons = []
    for record in bad:
        with pytest.raises(EventError) as info:
            parse_preference(record.value)
        reasons.append(str(info.value))
    joined = "\n".join(reasons)
    for fragment in ("malformed JSON", "must be a JSON object", "missing field 'response_b'",
                     "prompt: must not be empty", "winner must be one of ['A', 'B', 'tie']",
                     f"at most {MAX_TEXT_CHARS} allowed", "response_b: must be text, got int"):
        assert fragment in joined, fragment


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"winner": "a"}, "winner must be one of ['A', 'B', 'tie'], got 'a' (pair_id='p-1')"),
        ({"response_a": ""}, "response_a: must not be empty (pair_id='p-1')"),
        ({"prompt": "x" * (MAX_TEXT_CHARS + 1)},
         f"prompt: is {MAX_TEXT_CHARS + 1} characters, at most {MAX_TEXT_CHARS} allowed"),
        ({"ts": "yesterday"}, "ts: "),
        ({"pair_id": ""}, "pair_id: "),
    ],
)
def test_each_rule_names_the_field(change: dict, message: str) -> None:
    with pytest.raises(EventError, match="^" + message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        parse_preference(json.dumps(VALID | change).encode())


def test_missing_field_and_non_utf8() -> None:
    without = {k: v for k, v in VALID.items() if k != "winner"}
    with pytest.raises(EventError, match="missing field 'winner'"):
        parse_preference(json.dumps(without))
    with pytest.raises(EventError, match="not UTF-8"):
        parse_preference(b"\xff\xfe{}")


def test_invalid_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="tie_fraction must be within"):
        list(generate_preferences(PreferenceSpec(count=1, tie_fraction=2.0)))
