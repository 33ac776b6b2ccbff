"""The preference example's demo stream: pairs of responses to one prompt, and which one a
person preferred (A, B or a tie).

Each pair answers one prompt twice. A *good* response is polite and on topic (a greeting, one
or two facts of the prompt's topic, a friendly closing); a *bad* one is rude or states a fact
of another topic. The winner is the side with the good response; when both sides are good,
or both bad, the pair is a ``tie``. So the winner follows from the text alone and a small
text model can learn it, ties included. About a third of the pairs are ties, so the majority
class is about a third of the pairs and beating it means reading the text.

A ``bad_fraction`` of records is malformed on purpose (`BAD_KINDS`); the feature engine
dead-letters each of them. The stream does not drift: ``drift_at`` is accepted for the demo's
interface and marks no record.

>>> records = list(generate(20, drift_at=10, bad_fraction=0.0, seed=3))
>>> len(records), {r.stream for r in records}, any(r.drifted for r in records)
(20, {'preferences'}, False)
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from fti.ops.scenario import DemoRecord

STREAM = "preferences"
WINNERS = ("A", "B", "tie")
TIE_FRACTION = 1 / 3
START = datetime(2026, 1, 1, tzinfo=UTC)
MEAN_GAP_S = 20.0
BAD_KINDS = ("truncated", "not_object", "missing_field", "bad_winner", "text_not_string")

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


def good_response(rng: random.Random, topic: int) -> str:
    """A polite answer stating one or two facts of ``topic``."""
    facts = rng.sample(TOPICS[topic][1], rng.randint(1, 2))
    return " ".join([rng.choice(POLITE_OPENINGS), *facts, rng.choice(POLITE_CLOSINGS)])


def bad_response(rng: random.Random, topic: int) -> str:
    """A rude reply, or a fact of another topic than ``topic`` without a greeting."""
    if rng.random() < 0.5:
        return " ".join(rng.sample(RUDE_REPLIES, rng.randint(1, 2)))
    other = rng.choice([t for t in range(len(TOPICS)) if t != topic])
    return rng.choice(TOPICS[other][1])


def pair(rng: random.Random, tie_fraction: float = TIE_FRACTION) -> dict[str, str]:
    """Prompt, both responses and the winner of one valid pair."""
    topic = rng.randrange(len(TOPICS))
    if rng.random() < tie_fraction:
        winner = "tie"
        make = good_response if rng.random() < 0.5 else bad_response
        a, b = make(rng, topic), make(rng, topic)
    else:
        winner = rng.choice(("A", "B"))
        good, bad = good_response(rng, topic), bad_response(rng, topic)
        a, b = (good, bad) if winner == "A" else (bad, good)
    prompt = rng.choice(TOPICS[topic][0])
    return {"prompt": prompt, "response_a": a, "response_b": b, "winner": winner}


def broken(kind: str, event: dict[str, Any]) -> tuple[bytes | None, bytes]:
    """Key and value of a record of ``kind`` (`BAD_KINDS`) the stream's decoder rejects."""
    key: bytes | None = event["pair_id"].encode()
    text = json.dumps(event, separators=(",", ":")).encode()
    if kind == "truncated":
        return key, text[: len(text) // 2]
    if kind == "not_object":
        return None, json.dumps([event["prompt"], event["winner"]]).encode()
    changed = dict(event)
    if kind == "missing_field":
        del changed["response_b"]
    elif kind == "bad_winner":
        changed["winner"] = "C"
    elif kind == "text_not_string":
        changed["response_b"] = 42
    else:
        raise ValueError(f"unknown bad kind {kind!r}; use one of {', '.join(BAD_KINDS)}")
    return key, json.dumps(changed, separators=(",", ":")).encode()


def generate(count: int, drift_at: int, bad_fraction: float, seed: int) -> Iterator[DemoRecord]:
    """``count`` preference records in event-time order; the same arguments give the same
    bytes."""
    if count < 0 or not 0.0 <= bad_fraction <= 1.0:
        raise ValueError(f"count must be >= 0 and bad_fraction within [0, 1], got {count}, "
                         f"{bad_fraction}")
    rng = random.Random(f"fti-pairs-{seed}")
    bad_rng = random.Random(f"fti-pairs-bad-{seed}")
    clock, n_bad = START, 0
    for index in range(count):
        clock += timedelta(seconds=rng.expovariate(1.0 / MEAN_GAP_S))
        ts = clock.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        pair_id = f"pair-{seed}-{index:08d}"
        event = {"pair_id": pair_id, **pair(rng), "ts": ts}
        if bad_rng.random() < bad_fraction:
            key, value = broken(BAD_KINDS[n_bad % len(BAD_KINDS)], event)
            n_bad += 1
            yield DemoRecord(STREAM, key, value, index, bad=True)
            continue
        value = json.dumps(event, separators=(",", ":")).encode()
        yield DemoRecord(STREAM, pair_id.encode(), value, index)


def index_of(event_id: str) -> int:
    """The position of a generated pair in the stream (from its pair_id)."""
    return int(event_id.rsplit("-", 1)[1])
