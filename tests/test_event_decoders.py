"""Untrusted bytes never raise: every decoder of Kafka input yields a value or an EventError."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fti.errors import EventError
from fti.events import Prediction, RegistryEvent, RetrainRequest, decode_event
from fti.features.project.decode import Event, Rejection, StreamDecoder
from fti.features.project.loader import Project, load_project
from fti.features.project.scaffold import init_project
from fti.models.jobs.trainer_service import JobEvent
from tests.poison import OVERSIZE, POISON

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _scaffolded(directory: Path) -> Project:
    init_project(directory)
    return load_project(directory)


def _stream_decoders() -> dict[str, StreamDecoder]:
    """A decoder of every stream of the example projects and of `fti init`'s scaffold."""
    with tempfile.TemporaryDirectory() as scaffolded:
        projects = [load_project(EXAMPLES / "fraud"), load_project(EXAMPLES / "preferences"),
                    _scaffolded(Path(scaffolded) / "shop")]
    return {f"{p.directory.name}.{name}": StreamDecoder(stream)
            for p in projects for name, stream in p.streams.items()}


STREAMS = _stream_decoders()
DECODERS: dict[str, Callable[[bytes], Any]] = {
    "prediction": partial(decode_event, Prediction),
    "retrain_request": partial(decode_event, RetrainRequest),
    "registry_event": partial(decode_event, RegistryEvent),
    "job_event": partial(decode_event, JobEvent),
}
FIELDS = sorted({f for model in (Prediction, RetrainRequest, RegistryEvent, JobEvent)
                 for f in model.model_fields}
                | {f.name for d in STREAMS.values() for f in d.stream.fields})

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
           | st.text(max_size=30) | st.sampled_from(["0001-01-01T00:00:00+01:00", "Z", "",
                                                    "9999-12-31T23:59:59-23:59", "A", "tie",
                                                    "promoted", "drift", "EUR", "pos"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)
event_like = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), json_values,
                             max_size=len(FIELDS))


def _decodes_or_rejects(name: str, raw: bytes) -> None:
    if name in STREAMS:  # a stream's decoder never raises: an event or a rejection with a rule
        outcome = STREAMS[name].decode(raw, time.time())
        assert isinstance(outcome, Event) or (isinstance(outcome, Rejection) and outcome.rule
                                              and outcome.reason), outcome
        return
    try:
        DECODERS[name](raw)
    except EventError as ex:
        assert str(ex)  # a rejection says why


@pytest.mark.parametrize("name", sorted(DECODERS) + sorted(STREAMS))
@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=512))
def test_arbitrary_bytes(name: str, raw: bytes) -> None:
    _decodes_or_rejects(name, raw)


@pytest.mark.parametrize("name", sorted(DECODERS) + sorted(STREAMS))
@settings(max_examples=300, deadline=None)
@given(value=event_like)
def test_arbitrary_json_shaped_like_events(name: str, value: dict[str, Any]) -> None:
    _decodes_or_rejects(name, json.dumps(value, allow_nan=True).encode())


@pytest.mark.parametrize("name", sorted(DECODERS))
@pytest.mark.parametrize("kind", sorted(POISON) + ["oversize"])
def test_every_class_of_poison_is_rejected(name: str, kind: str) -> None:
    raw = OVERSIZE if kind == "oversize" else POISON[kind]
    with pytest.raises(EventError):
        DECODERS[name](raw)


@pytest.mark.parametrize("name", sorted(STREAMS))
@pytest.mark.parametrize("kind", sorted(POISON) + ["oversize"])
def test_every_class_of_poison_is_rejected_by_every_stream(name: str, kind: str) -> None:
    raw = OVERSIZE if kind == "oversize" else POISON[kind]
    outcome = STREAMS[name].decode(raw, time.time())
    assert isinstance(outcome, Rejection) and outcome.reason, outcome
