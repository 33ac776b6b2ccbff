"""The contract every drift detector keeps, and the mechanics they share.

`Detector` is the contract: `update(x, event_id) -> DetectorSignal | None`, `reset()`.
`BaseDetector` implements it once (grace, direction, the event ids of the window, evidence);
a detector subclasses it and implements `_test`, returning a `Finding` when its test fires.
Every signal carries its evidence: detector, feature, statistic and value, threshold, window
size and the event ids where the window starts and ends. Pure logic, no I/O; every class
pickles (Bytewax snapshots it).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

Direction = Literal["both", "increase", "decrease"]
ID_HISTORY = 1024  # recent event ids a streaming detector keeps to name where its window starts


def _num(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(f"{value:.6g}")


@dataclass(frozen=True)
class DetectorSignal:
    """A drift signal and its evidence; `evidence()` is the JSON-ready form."""

    detector: str
    feature: str
    statistic: str
    value: float
    threshold: float | None
    window_size: int
    window_start_event: str | None
    window_end_event: str | None
    mean_before: float | None = None
    mean_after: float | None = None
    confirmations: int = 1
    confirmed_by: str | None = None

    def evidence(self) -> dict[str, Any]:
        """Every field, floats rounded to 6 significant digits (JSON-safe: no NaN)."""
        return {
            "detector": self.detector, "feature": self.feature, "statistic": self.statistic,
            "value": _num(self.value), "threshold": _num(self.threshold),
            "window_size": self.window_size, "window_start_event": self.window_start_event,
            "window_end_event": self.window_end_event, "mean_before": _num(self.mean_before),
            "mean_after": _num(self.mean_after), "confirmations": self.confirmations,
            "confirmed_by": self.confirmed_by,
        }


@runtime_checkable
class Detector(Protocol):
    """The contract every detector keeps: one value in, a signal or None out."""

    name: str
    feature: str
    uses_reference: bool

    def update(self, x: float, event_id: str | None = None) -> DetectorSignal | None:
        """Take one value (and its event id); return a signal when drift is detected."""
        ...

    def reset(self) -> None:
        """Forget everything seen so far."""
        ...


class _Ring:
    """The newest `capacity` values and event ids; cheap to deep-copy."""

    def __init__(self, capacity: int) -> None:
        self.values = np.zeros(capacity)
        self.ids: list[str | None] = [None] * capacity
        self.pos = self.count = 0

    def push(self, value: float, event_id: str | None) -> None:
        self.values[self.pos], self.ids[self.pos] = value, event_id
        self.pos = (self.pos + 1) % self.values.size
        self.count = min(self.count + 1, self.values.size)

    def last(self, k: int) -> np.ndarray:
        """The newest min(k, count) values, oldest first."""
        k = min(k, self.count)
        if k <= self.pos:
            return self.values[self.pos - k:self.pos].copy()
        return np.concatenate([self.values[self.values.size - (k - self.pos):],
                               self.values[:self.pos]])

    def id_back(self, k: int) -> str | None:
        """The event id `k` observations back (1 = newest), None when no longer kept."""
        return self.ids[(self.pos - k) % self.values.size] if 0 < k <= self.count else None

    def clear(self) -> None:
        self.pos = self.count = 0

    def __deepcopy__(self, memo: dict[int, Any]) -> _Ring:
        clone = _Ring.__new__(_Ring)
        clone.values, clone.ids = self.values.copy(), list(self.ids)  # event ids are immutable
        clone.pos, clone.count = self.pos, self.count
        return clone


@dataclass
class Finding:
    """What a test found, before grace and direction decide whether it is a signal."""

    statistic: str
    value: float
    threshold: float | None
    window_size: int
    mean_before: float | None
    mean_after: float | None
    restart: bool = False  # start a fresh window (window tests)
    directed: bool = False  # the test itself only looks in `direction`


class BaseDetector(abc.ABC):
    """Shared mechanics: grace, direction and evidence; subclasses implement `_test`."""

    uses_reference = False

    def __init__(self, name: str, feature: str, grace: int = 0, direction: Direction = "both",
                 history: int = ID_HISTORY) -> None:
        if direction not in ("both", "increase", "decrease"):
            raise ValueError(f"direction must be both, increase or decrease, got {direction!r}")
        if grace < 0:
            raise ValueError(f"grace must be >= 0, got {grace}")
        self.name, self.feature, self.grace, self.direction = name, feature, grace, direction
        self.seen = 0
        self._ring = _Ring(history)

    def update(self, x: float, event_id: str | None = None) -> DetectorSignal | None:
        """Take one value; a signal only after `grace` values and in `direction`."""
        x = float(x)
        self.seen += 1
        self._ring.push(x, event_id)
        found = self._test(x)
        if found is None:
            return None
        signal = None
        if self.seen > self.grace and (found.directed or self._agrees(found)):
            signal = DetectorSignal(
                self.name, self.feature, found.statistic, found.value, found.threshold,
                found.window_size, self._ring.id_back(found.window_size), event_id,
                found.mean_before, found.mean_after,
            )
        if found.restart:
            self._ring.clear()
        return signal

    def reset(self) -> None:
        """Forget everything seen so far (grace starts again)."""
        self.seen = 0
        self._ring.clear()
        self._reset_test()

    def _agrees(self, found: Finding) -> bool:
        before, after = found.mean_before, found.mean_after
        if self.direction == "both" or before is None or after is None:
            return True
        return after > before if self.direction == "increase" else after < before

    @abc.abstractmethod
    def _test(self, x: float) -> Finding | None:
        """Feed one value to the underlying test; a finding when it signals."""

    @abc.abstractmethod
    def _reset_test(self) -> None:
        """Start the underlying test afresh."""
