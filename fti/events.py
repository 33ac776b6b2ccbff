"""Event schemas (pydantic) for every topic, and their decoders.

>>> tx = decode_transaction(b'{"tx_id":"t1","card_id":"c1","merchant_id":"m1","amount":12.5,'
...                         b'"currency":"EUR","country":"DE","channel":"pos",'
...                         b'"ts":"2026-01-01T00:00:00Z"}')
>>> tx.amount, tx.ts.isoformat()
(12.5, '2026-01-01T00:00:00+00:00')
>>> decode_transaction(b'{"tx_id": 1')
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
    field_validator,
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


class Transaction(_Event):
    """A card transaction on the `transactions` topic, keyed by `card_id`."""

    tx_id: str = Field(min_length=1, max_length=128)
    card_id: str = Field(min_length=1, max_length=128)
    merchant_id: str = Field(min_length=1, max_length=128)
    amount: float
    currency: str = Field(min_length=3, max_length=3)
    country: str = Field(min_length=2, max_length=2)
    channel: str
    ts: EventTime

    @field_validator("amount", mode="before")
    @classmethod
    def _amount_is_number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a number, got {type(value).__name__}")
        return value


class Label(_Event):
    """A fraud label on the `labels` topic, keyed by `tx_id`; arrives after its transaction."""

    tx_id: str = Field(min_length=1, max_length=128)
    is_fraud: bool
    ts: EventTime


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

    >>> decode_event(Label, b'{"tx_id": "t1", "is_fraud": true, "ts": 1767225600000}').tx_id
    't1'
    >>> decode_event(Label, b'{"tx_id": "t1", "is_fraud": true, "ts": "0001-01-01T00:00:00+01:00"}')
    Traceback (most recent call last):
    ...
    fti.errors.EventError: ts: Value error, time out of range: '0001-01-01T00:00:00+01:00'
    """
    data = read_json_object(raw)
    try:
        return model.model_validate(data)
    except ValidationError as ex:
        raise EventError(_first_error(ex)) from None
    except Exception as ex:  # a validator's own bug must not stop a flow either
        raise EventError(f"undecodable {model.__name__}: {type(ex).__name__}: {ex}") from None


def decode_transaction(raw: bytes | str) -> Transaction:
    """Decode a raw transaction and check its shape (JSON object, fields, types) only."""
    return decode_event(Transaction, raw)


def parse_label(raw: bytes | str) -> Label:
    """Decode and validate one raw label; raise `EventError` naming the problem."""
    return decode_event(Label, raw)


#: Winner values in label order: label 0 = "A", 1 = "B", 2 = "tie".
WINNERS: tuple[str, ...] = ("A", "B", "tie")
#: Longest prompt or response accepted, in characters.
MAX_TEXT_CHARS = 4000


class PreferenceEvent(BaseModel):
    """A human preference between two responses to one prompt, keyed by ``pair_id``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    pair_id: str = Field(min_length=1, max_length=128)
    prompt: str
    response_a: str
    response_b: str
    winner: Literal["A", "B", "tie"]
    ts: EventTime

    @field_validator("prompt", "response_a", "response_b", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"must be text, got {type(value).__name__}")
        if not value.strip():
            raise ValueError("must not be empty")
        if len(value) > MAX_TEXT_CHARS:
            raise ValueError(f"is {len(value)} characters, at most {MAX_TEXT_CHARS} allowed")
        return value

    @property
    def label(self) -> int:
        """Class index of the winner: A=0, B=1, tie=2."""
        return WINNERS.index(self.winner)


def parse_preference(raw: bytes | str) -> PreferenceEvent:
    """Decode and validate one raw preference event; raise `EventError` naming the problem.

    >>> parse_preference(b'{"pair_id":"p","prompt":"q","response_a":"x","response_b":" ",'
    ...                  b'"winner":"A","ts":"2026-01-01T00:00:00Z"}')
    Traceback (most recent call last):
    ...
    fti.errors.EventError: response_b: must not be empty (pair_id='p')
    """
    data = read_json_object(raw)
    try:
        return PreferenceEvent.model_validate(data)
    except ValidationError as ex:
        err = ex.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "event"
        where = f" (pair_id={data.get('pair_id')!r})" if "pair_id" in data else ""
        if err["type"] == "missing":
            raise EventError(f"missing field {field!r}{where}") from None
        if field == "winner":
            raise EventError(
                f"winner must be one of {list(WINNERS)}, got {data.get('winner')!r}{where}"
            ) from None
        message = err["msg"].removeprefix("Value error, ")
        raise EventError(f"{field}: {message}{where}") from None
    except Exception as ex:  # a validator's own bug must not stop a flow either
        raise EventError(f"undecodable preference: {type(ex).__name__}: {ex}") from None
