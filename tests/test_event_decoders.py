"""Untrusted bytes never raise: every decoder of Kafka input yields a value or an EventError."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fti.errors import EventError
from fti.events import (
    Label,
    Prediction,
    RegistryEvent,
    RetrainRequest,
    Transaction,
    decode_event,
    parse_preference,
)
from fti.features.validation import parse_transaction
from fti.models.jobs.trainer_service import JobEvent
from fti.settings import ValidationSettings
from tests.poison import OVERSIZE, POISON

DECODERS: dict[str, Callable[[bytes], Any]] = {
    "transaction": partial(parse_transaction, rules=ValidationSettings()),
    "label": partial(decode_event, Label),
    "prediction": partial(decode_event, Prediction),
    "retrain_request": partial(decode_event, RetrainRequest),
    "registry_event": partial(decode_event, RegistryEvent),
    "job_event": partial(decode_event, JobEvent),
    "preference": parse_preference,
}
FIELDS = sorted({f for model in (Transaction, Label, Prediction, RetrainRequest, RegistryEvent,
                                 JobEvent) for f in model.model_fields}
                | {"pair_id", "prompt", "response_a", "response_b", "winner"})

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
           | st.text(max_size=30) | st.sampled_from(["0001-01-01T00:00:00+01:00", "Z", "",
                                                    "9999-12-31T23:59:59-23:59", "A", "tie",
                                                    "promoted", "drift", "EUR", "pos"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)
event_like = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), json_values,
                             max_size=len(FIELDS))


def _decodes_or_rejects(decode: Callable[[bytes], Any], raw: bytes) -> None:
    try:
        decode(raw)
    except EventError as ex:
        assert str(ex)  # a rejection says why


@pytest.mark.parametrize("name", sorted(DECODERS))
@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=512))
def test_arbitrary_bytes(name: str, raw: bytes) -> None:
    _decodes_or_rejects(DECODERS[name], raw)


@pytest.mark.parametrize("name", sorted(DECODERS))
@settings(max_examples=300, deadline=None)
@given(value=event_like)
def test_arbitrary_json_shaped_like_events(name: str, value: dict[str, Any]) -> None:
    _decodes_or_rejects(DECODERS[name], json.dumps(value, allow_nan=True).encode())


@pytest.mark.parametrize("name", sorted(DECODERS))
@pytest.mark.parametrize("kind", sorted(POISON) + ["oversize"])
def test_every_class_of_poison_is_rejected(name: str, kind: str) -> None:
    raw = OVERSIZE if kind == "oversize" else POISON[kind]
    with pytest.raises(EventError):
        DECODERS[name](raw)
