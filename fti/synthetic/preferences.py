"""Seeded synthetic preference pairs (prompt, two responses, winner) for the `preferences` topic.

Each pair answers one prompt twice. A *good* response is polite and on topic; a *bad* one is
rude or about another topic. The winner is the side with the good response; when both sides
are equally good or equally bad the pair is a ``tie``. So the winner follows from the text, and
a small classifier can learn it. A ``bad_fraction`` of records is malformed or invalid (each is
rejected by `parse_preference`).

>>> from fti.events import WINNERS, parse_preference
>>> records = list(generate_preferences(PreferenceSpec(count=50, seed=3, bad_fraction=0.1)))
>>> len(records), sum(r.bad for r in records) > 0
(50, True)
>>> event = parse_preference(next(r for r in records if not r.bad).value)
>>> event.winner in WINNERS, event.label == WINNERS.index(event.winner)
(True, True)
>>> parse_preference(b'{"pair_id": "p1"}')
Traceback (most recent call last):
...
fti.errors.EventError: missing field 'prompt' (pair_id='p1')
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fti.events import MAX_TEXT_CHARS

BAD_KINDS = (
    "truncated", "not_object", "missing_field", "empty_text", "bad_winner", "too_long",
    "text_not_string",
)  # fmt: skip

# (prompt variants, facts): a good response states facts of its own topic.
TOPICS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("How do I reverse a list in Python?", "What is the easiest way to flip a Python list?"),
     ("Use items[::-1] to get a reversed copy of the list.",
      "Calling items.reverse() reverses the list in place.",
      "The built-in reversed(items) returns an iterator over the list backwards.")),
    (("How long should I boil pasta?", "When is spaghetti cooked enough?"),
     ("Most dried pasta needs eight to twelve minutes in salted boiling water.",
      "Taste a piece a minute before the time on the package; it should be al dente.",
      "Keep a cup of the pasta water to loosen the sauce later.")),
    (("How can I sleep better at night?", "Any tips to fall asleep faster?"),
     ("Go to bed and wake up at the same time every day, weekends included.",
      "Keep the bedroom dark, quiet and slightly cool.",
      "Avoid coffee in the afternoon and screens in the last hour before bed.")),
    (("How do I start running as a beginner?", "What is a good first running plan?"),
     ("Alternate one minute of easy running with two minutes of walking for twenty minutes.",
      "Run three times a week and rest in between so your legs can recover.",
      "Wear comfortable shoes and keep a pace at which you can still talk.")),
    (("How do I water a cactus?", "How often does a cactus need water?"),
     ("Water the cactus only when the soil is completely dry, about every two weeks.",
      "Use a pot with a drainage hole so the roots never sit in water.",
      "In winter the cactus rests and needs water only once a month.")),
    (("How do I save money on groceries?", "Ways to spend less at the supermarket?"),
     ("Plan the meals of the week and buy only what the list says.",
      "Compare the price per kilogram instead of the price per package.",
      "Cook larger batches and freeze portions for busy days.")),
    (("How do I change a flat bicycle tire?", "My bike tire is flat, what do I do?"),
     ("Remove the wheel, lever one side of the tire off the rim and pull out the tube.",
      "Find the hole by pumping the tube and listening for escaping air.",
      "Patch or replace the tube, refit the tire and pump it to the pressure on the sidewall.")),
    (("How do I make my email more polite?", "How should I write a friendly work email?"),
     ("Open with a greeting and the person's name.",
      "State your request clearly and thank the reader for their time.",
      "Close with a friendly sign-off such as kind regards.")),
)
POLITE_OPENINGS = ("Great question!", "Sure, happy to help.", "Thanks for asking.",
                   "Good idea to ask.", "Of course.")
POLITE_CLOSINGS = ("I hope this helps!", "Good luck, you can do it.",
                   "Let me know if you have more questions.", "Enjoy!")
RUDE_REPLIES = ("Figure it out yourself.", "That is a stupid question.",
                "Whatever, not my problem.", "Stop asking me this.",
                "Nobody cares, just google it.", "Ugh, obviously.")


@dataclass(frozen=True)
class PreferenceSpec:
    """What to generate; the same spec always yields byte-identical records."""

    count: int  # number of records (bad ones included)
    seed: int = 7
    tie_fraction: float = 0.1  # fraction of valid pairs whose winner is "tie"
    bad_fraction: float = 0.0  # fraction of records that are malformed/invalid
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    mean_gap_s: float = 20.0  # mean event-time gap between consecutive pairs


@dataclass(frozen=True)
class PreferenceRecord:
    """One record for the `preferences` topic, keyed by pair_id (bad ones may have no key)."""

    key: bytes | None
    value: bytes  # JSON bytes (or deliberately malformed bytes when bad)
    index: int
    bad: bool  # True if `parse_preference` must reject it


def _good(rng: random.Random, topic: int) -> str:
    facts = rng.sample(TOPICS[topic][1], rng.randint(1, 2))
    return " ".join([rng.choice(POLITE_OPENINGS), *facts, rng.choice(POLITE_CLOSINGS)])


def _bad(rng: random.Random, topic: int) -> str:
    if rng.random() < 0.5:
        return " ".join(rng.sample(RUDE_REPLIES, rng.randint(1, 2)))
    other = rng.choice([t for t in range(len(TOPICS)) if t != topic])
    return rng.choice(TOPICS[other][1])  # off topic, no greeting


def _pair(rng: random.Random, tie_fraction: float) -> dict[str, str]:
    """Prompt, both responses and the winner of one valid pair."""
    topic = rng.randrange(len(TOPICS))
    if rng.random() < tie_fraction:
        winner = "tie"
        make = _good if rng.random() < 0.5 else _bad
        a, b = make(rng, topic), make(rng, topic)
    else:
        winner = rng.choice(("A", "B"))
        good, bad = _good(rng, topic), _bad(rng, topic)
        a, b = (good, bad) if winner == "A" else (bad, good)
    prompt = rng.choice(TOPICS[topic][0])
    return {"prompt": prompt, "response_a": a, "response_b": b, "winner": winner}


def _bad_value(kind: str, pair: dict[str, Any]) -> tuple[bytes | None, bytes]:
    """Key and value of an invalid record of the given kind, built from a valid pair."""
    key: bytes | None = pair["pair_id"].encode()
    text = json.dumps(pair, separators=(",", ":")).encode()
    if kind == "truncated":
        return key, text[: len(text) // 2]
    if kind == "not_object":
        return None, json.dumps([pair["prompt"], pair["winner"]]).encode()
    broken = dict(pair)
    if kind == "missing_field":
        del broken["response_b"]
    elif kind == "empty_text":
        broken["prompt"] = "   "
    elif kind == "bad_winner":
        broken["winner"] = "C"
    elif kind == "too_long":
        broken["response_a"] = "blah " * (MAX_TEXT_CHARS // 5 + 1)
    elif kind == "text_not_string":
        broken["response_b"] = 42
    return key, json.dumps(broken, separators=(",", ":")).encode()


def _check(spec: PreferenceSpec) -> None:
    problems = {
        "count must be >= 0": spec.count < 0,
        "tie_fraction must be within [0, 1]": not 0.0 <= spec.tie_fraction <= 1.0,
        "bad_fraction must be within [0, 1]": not 0.0 <= spec.bad_fraction <= 1.0,
        "mean_gap_s must be > 0": not spec.mean_gap_s > 0,
        "start must be timezone-aware": spec.start.tzinfo is None,
    }
    broken = [rule for rule, bad in problems.items() if bad]
    if broken:
        raise ValueError(f"invalid PreferenceSpec ({'; '.join(broken)}): {spec}")


def generate_preferences(spec: PreferenceSpec) -> Iterator[PreferenceRecord]:
    """Yield ``spec.count`` preference records in event-time order."""
    _check(spec)
    rng = random.Random(f"fti-preferences-{spec.seed}")
    bad_rng = random.Random(f"fti-preferences-bad-{spec.seed}")
    clock = spec.start
    n_bad = 0
    for index in range(spec.count):
        clock += timedelta(seconds=rng.expovariate(1.0 / spec.mean_gap_s))
        ts = clock.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        pair_id = f"pair-{spec.seed}-{index:08d}"
        pair = {"pair_id": pair_id, **_pair(rng, spec.tie_fraction), "ts": ts}
        if bad_rng.random() < spec.bad_fraction:
            key, value = _bad_value(BAD_KINDS[n_bad % len(BAD_KINDS)], pair)
            n_bad += 1
            yield PreferenceRecord(key, value, index, True)
            continue
        value = json.dumps(pair, separators=(",", ":")).encode()
        yield PreferenceRecord(pair_id.encode(), value, index, False)
