"""Decode a stream's raw Kafka values, a whole batch at a time, into typed events.

Any input yields an `Event` or a `Rejection` with its rule and reason, never an exception:
`schema` (not a JSON object, a field of the wrong type), `required:<field>`,
`range:<field>`, `enum:<field>` and `future` (further ahead than the stream's
`max_future_skew`). Timestamps are RFC 3339 text or epoch milliseconds, kept as epoch
seconds.

>>> from fti.features.project.fields import Field, Stream
>>> s = Stream("p", topic="p", event_time="ts", fields=[Field("amount", "float", min=0),
...            Field("ts", "timestamp")])
>>> d = StreamDecoder(s)
>>> d.decode(b'{"amount": 2, "ts": 1767225600000}', now=1767225600.0).values
{'amount': 2.0, 'ts': 1767225600.0}
>>> d.decode(b'{"amount": -1, "ts": 1767225600000}', now=1767225600.0).rule
'range:amount'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fti.errors import EventError
from fti.events import read_json_object, to_utc_datetime
from fti.features.project.fields import Field, Stream

MAX_STRING_CHARS = 10_000


@dataclass(frozen=True, slots=True)
class Event:
    """A valid event: typed field values (timestamps as epoch seconds) and its event time."""

    values: dict[str, Any]
    time: float


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an input is not an event: the rule it broke and a reason naming the value."""

    rule: str
    reason: str


def _string(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {type(value).__name__}")
    if len(value) > MAX_STRING_CHARS:
        raise ValueError(f"is {len(value)} characters, at most {MAX_STRING_CHARS}")
    return value


def _int(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"must be an integer, got {value!r:.40}")
    if abs(value) >= 2**63:
        raise ValueError(f"is out of the 64-bit range: {value:.3g}")
    return value


def _float(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number, got {value!r:.40}")
    out = float(value)  # orjson never yields NaN/inf; big ints overflow to inf
    if out in (float("inf"), float("-inf")):
        raise ValueError(f"is out of range: {value:.3g}")
    return out


def _bool(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r:.40}")
    return value


#: Epoch milliseconds below this (year 2096) are exact to the microsecond as a float of
#: seconds, so `value / 1000` is what the round trip through a datetime gives.
_PLAIN_MS_BELOW = 4_000_000_000_000


def _timestamp(value: Any) -> Any:
    kind = type(value)
    if kind is int and 0 <= value < _PLAIN_MS_BELOW:
        return value / 1000
    if kind is str and value.endswith("Z"):
        try:  # RFC 3339 in UTC, as most producers write it: no offset to convert
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass  # the full parse below says why
        else:
            if moment.tzinfo is UTC:
                return moment.timestamp()
    return to_utc_datetime(value).timestamp()


#: The Python type a valid value of a field type already has as JSON decodes it (floats:
#: ints become floats, so only a float is plain; timestamps always convert).
_PLAIN: dict[str, type] = {"string": str, "float": float, "bool": bool}
_CONVERT: dict[str, Callable[[Any], Any]] = {
    "string": _string, "int": _int, "float": _float, "bool": _bool, "timestamp": _timestamp,
}


class StreamDecoder:
    """Decodes and validates the raw values of one stream."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self._fields: Sequence[Field] = stream.fields
        self._convert = [(_CONVERT[f.type], f) for f in stream.fields]
        # Per field: name, Python type of an already-valid value (a fast path that needs no
        # conversion), whether it is required, and whether it has a rule to check.
        self._plan = [(f.name, _PLAIN.get(f.type), f.required, convert, f,
                       f.min is not None or f.max is not None or f.values is not None)
                      for convert, f in self._convert]
        skew = stream.max_future_skew
        self._max_skew_s = skew.total_seconds() if isinstance(skew, timedelta) else None

    def decode(self, raw: bytes | None, now: float) -> Event | Rejection:
        """One raw value → an `Event` or a `Rejection`; `now` is epoch seconds."""
        try:
            data = read_json_object(raw or b"")
        except EventError as ex:
            return Rejection("schema", str(ex))
        values: dict[str, Any] = {}
        get = data.get
        for name, plain, required, convert, f, checked in self._plan:
            value = get(name)
            if value is None:
                if required:
                    return Rejection(f"required:{name}", f"{name} is required")
                values[name] = None
                continue
            if type(value) is not plain or (plain is str and len(value) > MAX_STRING_CHARS):
                try:
                    value = convert(value)
                except (ValueError, OverflowError, TypeError) as ex:
                    return Rejection("schema", f"{name} {ex}")
            if checked:
                problem = _check(f, value)
                if problem is not None:
                    return problem
            values[name] = value
        time = values[self.stream.event_time]
        if time is None:
            return Rejection(f"required:{self.stream.event_time}",
                             f"{self.stream.event_time} is required")
        if self._max_skew_s is not None and time > now + self._max_skew_s:
            return Rejection("future", f"{self.stream.event_time} is {time - now:.0f} s in the "
                             f"future, at most {self._max_skew_s:g} s allowed")
        return Event(values, time)

    def decode_batch(self, raws: Sequence[bytes | None], now: float) -> list[Event | Rejection]:
        """Every raw value of a batch, in order."""
        decode = self.decode
        return [decode(raw, now) for raw in raws]


def _check(f: Field, value: Any) -> Rejection | None:
    if f.min is not None and value < f.min:
        return Rejection(f"range:{f.name}", f"{f.name} must be >= {f.min:g}, got {value:g}")
    if f.max is not None and value > f.max:
        return Rejection(f"range:{f.name}", f"{f.name} must be <= {f.max:g}, got {value:g}")
    if f.values is not None and value not in f.values:
        return Rejection(f"enum:{f.name}", f"{f.name} must be one of {list(f.values)}, "
                         f"got {value!r:.40}")
    return None
