"""The preference example's stream: deterministic, decodable by the example's own stream,
ties about a third of the pairs, winners that follow from the text, bad records rejected."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from types import ModuleType

import pytest

from fti.features.project.decode import Event, Rejection, StreamDecoder
from fti.features.project.loader import load_project
from fti.ops.scenario import load_scenario
from tests.models.trainers.lora_support import EXAMPLE

NOW = 1_900_000_000.0


def _scenario_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("preferences_scenario", EXAMPLE / "scenario.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def decoder() -> StreamDecoder:
    return StreamDecoder(load_project(EXAMPLE).streams["preferences"])


def test_the_same_arguments_give_the_same_bytes() -> None:
    scenario = load_scenario(EXAMPLE)
    first = list(scenario.generate(200, 201, 0.1, 4))
    assert first == list(scenario.generate(200, 201, 0.1, 4))
    assert [r.value for r in scenario.generate(200, 201, 0.1, 5)] != [r.value for r in first]


def test_valid_pairs_decode_and_winners_follow_from_the_text(decoder: StreamDecoder) -> None:
    module = _scenario_module()
    scenario = load_scenario(EXAMPLE)
    records = list(scenario.generate(600, 601, 0.0, 2))
    assert [r.index for r in records] == list(range(600)) and not any(r.bad for r in records)
    events = [decoder.decode(r.value, now=NOW) for r in records]
    assert all(isinstance(e, Event) for e in events)
    pairs = [json.loads(r.value) for r in records]
    assert [r.key for r in records] == [p["pair_id"].encode() for p in pairs]
    assert [scenario.index_of(p["pair_id"]) for p in pairs] == list(range(600))
    counts = Counter(p["winner"] for p in pairs)
    assert set(counts) == {"A", "B", "tie"} and 0.25 < counts["tie"] / 600 < 0.42, counts
    assert max(counts.values()) / 600 < 0.45  # no outcome wins by always guessing it

    def good(text: str) -> bool:
        return text.startswith(module.POLITE_OPENINGS)

    for p in pairs:
        a, b = good(p["response_a"]), good(p["response_b"])
        assert p["winner"] == ("tie" if a == b else "A" if a else "B"), p
    assert any(r in p["response_a"] + p["response_b"] for p in pairs for r in module.RUDE_REPLIES)


def test_bad_records_are_rejected_by_the_stream(decoder: StreamDecoder) -> None:
    records = list(load_scenario(EXAMPLE).generate(400, 401, 0.15, 9))
    bad = [r for r in records if r.bad]
    assert 30 < len(bad) < 90
    rules: Counter[str] = Counter()
    for record in bad:
        outcome = decoder.decode(record.value, now=NOW)
        assert isinstance(outcome, Rejection), record
        rules[outcome.rule.split(":")[0]] += 1
    assert {"schema", "required", "enum"} <= set(rules), rules
