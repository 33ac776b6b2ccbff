"""Schemas (pydantic) of fti's own topics (predictions, retrain requests, registry events),
their decoder, and the time and JSON readers every stream decoder shares.

A user's events are declared in their project (`fti.features.project.declare.Stream`) and
decoded by `fti.features.project.decode`, not here.

>>> p = decode_event(Prediction, b'{"id":"e1","score":0.9,"label":1,"model":"m","version":2,'
...                  b'"latency_ms":3.5,"ts":"2026-01-01T00:00:00Z"}')
>>> p.score, p.ts.isoformat()
(0.9, '2026-01-01T00:00:00+00:00')
>>> decode_event(Prediction, b'{"id": 1')
Traceback (most recent call last):
...
fti.errors.EventError: malformed JSON: ...
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from fti.errors import EventError

_MAX_EPOCH_MS = 253402300799999  # 9999-12-31T23:59:59.999Z


def to_utc_datetime(value: Any) -> datetime:
    """Turn RFC 3339 text or epoch milliseconds into an aware UTC datetime.

    >>> to_utc_datetime(1767225600000).isoformat()
    '2026-01-01T00:00:00+00:00'
    >>> to_utc_datetime("2026-01-01T01:00:00+01:00").isoformat()
    '2026-01-01T00:00:00+00:00'
    """
    if isinstance(value, bool):
        raise ValueError("must be RFC 3339 text or epoch milliseconds, got a boolean")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 <= value <= _MAX_EPOCH_MS:
            raise ValueError(f"epoch milliseconds out of range: {value}")
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as ex:
            raise ValueError(f"not RFC 3339: {value!r}") from ex
        if parsed.tzinfo is None:
            raise ValueError(f"RFC 3339 time needs an offset (e.g. Z): {value!r}")
        return _in_utc(parsed, value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("datetime needs a timezone")
        return _in_utc(value, value)
    raise ValueError(f"must be RFC 3339 text or epoch milliseconds, got {type(value).__name__}")


def _in_utc(moment: datetime, given: Any) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before datetime.min in UTC
        raise ValueError(f"time out of range: {str(given)!r}") from None


EventTime = Annotated[datetime, BeforeValidator(to_utc_datetime)]
E = TypeVar("E", bound=BaseModel)


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=False)

    def to_json(self) -> bytes:
        """Serialize to compact JSON bytes, times as RFC 3339 in UTC."""
        return self.model_dump_json().encode()


class Prediction(_Event):
    """A scored event on the `predictions` topic, keyed by `id` (the event's id field).

    `score` is the model's output (a probability for binary tasks, the value for
    regression); `label` the decision taken from it (a class, or the value)."""

    id: str
    score: float
    label: int | float | str
    model: str
    version: int
    latency_ms: float
    ts: EventTime


class RetrainRequest(_Event):
    """A request on `retrain.requests`, keyed by model name."""

    model: str
    reason: Literal["drift", "volume", "manual"]
    evidence: dict[str, Any] = Field(default_factory=dict)
    requested_at: EventTime


class RegistryEvent(_Event):
    """A registry change on `registry.events`, keyed by model name."""

    model: str
    version: int
    event: Literal["registered", "promoted", "rolled_back", "approved", "rejected"]
    alias: str | None = None
    uri: str
    sha256: str


def _first_error(ex: ValidationError) -> str:
    err = ex.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "event"
    if err["type"] == "missing":
        return f"missing field {field!r}"
    return f"{field}: {err['msg']}"


#: Largest event accepted, in bytes (Kafka's default `message.max.bytes` is about 1 MB).
MAX_EVENT_BYTES = 1 << 20


def read_json_object(raw: bytes | str) -> dict[str, Any]:
    """A JSON object from untrusted bytes; `EventError` for anything else.

    orjson refuses what `json` lets through: NaN/Infinity literals, invalid UTF-8 (`json`
    would guess UTF-16/32 from the bytes), nesting deeper than 1024 (where `json` raises
    RecursionError), and numbers that overflow a double; `json`'s 4,300-digit integer
    ValueError never arises.
    """
    if raw is None or len(raw) == 0:
        raise EventError("empty event")
    if len(raw) > MAX_EVENT_BYTES:
        raise EventError(f"event is {len(raw)} bytes, at most {MAX_EVENT_BYTES} accepted")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as ex:
        kind = "event is not UTF-8" if "UTF-8" in str(ex) else "malformed JSON"
        raise EventError(f"{kind}: {ex}") from None
    if not isinstance(data, dict):
        raise EventError(f"event must be a JSON object, got {type(data).__name__}")
    return data


def decode_event(model: type[E], raw: bytes | str) -> E:
    """Decode untrusted bytes into event `model`; any problem is an `EventError` naming it.

    >>> raw = b'{"model": "m", "reason": "drift", "requested_at": %s}'
    >>> decode_event(RetrainRequest, raw % b"1767225600000").reason
    'drift'
    >>> decode_event(RetrainRequest, raw % b'"0001-01-01T00:00:00+01:00"')
    Traceback (most recent call last):
    ...
    fti.errors.EventError: requested_at: Value error, time out of range: '0001-01-01T00:00:00+01:00'
    """
    data = read_json_object(raw)
    try:
        return model.model_validate(data)
    except ValidationError as ex:
        raise EventError(_first_error(ex)) from None
    except Exception as ex:  # a validator's own bug must not stop a flow either
        raise EventError(f"undecodable {model.__name__}: {type(ex).__name__}: {ex}") from None
