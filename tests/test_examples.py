"""Each example project is a directory a user could have written: it loads, plans cleanly
from nothing, and its groups compute features from an event of its own stream."""

from __future__ import annotations

from pathlib import Path

import pytest

from fti.features.project.decode import Event, StreamDecoder
from fti.features.project.engine import GroupEngine
from fti.features.project.loader import load_project
from fti.features.project.plan import plan

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SAMPLES = {
    "fraud": (b'{"tx_id": "t1", "card_id": "c1", "merchant_id": "m1", "amount": 12.5, '
              b'"currency": "EUR", "country": "DE", "channel": "online", '
              b'"ts": "2026-12-03T10:00:00Z"}'),
    "preferences": (b'{"pair_id": "p1", "prompt": "Hi?", "response_a": "Hello there", '
                    b'"response_b": "Hi", "winner": "A", "ts": "2026-12-03T10:00:00Z"}'),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_an_example_plans_and_computes_features(name: str) -> None:
    project = load_project(EXAMPLES / name)
    result = plan(project, None)
    assert result.valid and result.counts()[0] > 0, result.render()
    stream = next(iter(g.stream for g in project.groups.values()))
    event = StreamDecoder(stream).decode(SAMPLES[name], now=1_796_300_000.0)
    assert isinstance(event, Event), event
    for group in project.groups.values():
        row = GroupEngine(group).apply(None, event)[1]
        assert isinstance(row, dict) and set(group.feature_names()) <= set(row)
    for view in project.views.values():
        assert view.features  # something to train on
