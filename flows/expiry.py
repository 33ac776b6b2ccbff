"""Keyed state that expires: a key untouched for `ttl_s` (processing time) is dropped.

Bytewax keeps a stateful step's state per key until the step says to discard it; a join
whose partner never arrives, or an entity that goes quiet, would otherwise stay in memory
for good. `expiring_flat_map` is `op.stateful_flat_map` with that bound: the state is
discarded when the mapper returns None (as there) or when `ttl_s` passed since the key's
last item. Its snapshot carries the last-touched time, so expiry survives a restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.operators import StatefulLogic

S = TypeVar("S")
V = TypeVar("V")
W = TypeVar("W")

Mapper = Callable[[S | None, V], tuple[S | None, Iterable[W]]]


class ExpiringLogic(StatefulLogic[V, W, tuple[Any, float]], Generic[S, V, W]):
    """One key's state and when it was last touched (epoch seconds)."""

    def __init__(self, mapper: Mapper, ttl_s: float, resume: tuple[Any, float] | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.mapper, self.ttl_s, self.clock = mapper, ttl_s, clock
        self.state, self.touched = resume if resume is not None else (None, clock())

    def on_item(self, value: V) -> tuple[Iterable[W], bool]:
        self.state, out = self.mapper(self.state, value)
        self.touched = self.clock()
        return out, self.state is None

    def on_notify(self) -> tuple[Iterable[W], bool]:
        if self.clock() - self.touched >= self.ttl_s:
            return (), StatefulLogic.DISCARD
        return (), StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        return datetime.fromtimestamp(self.touched + self.ttl_s, UTC)

    def snapshot(self) -> tuple[Any, float]:
        return self.state, self.touched


def expiring_flat_map(step_id: str, up: Stream[tuple[str, V]], mapper: Mapper,
                      ttl_s: float) -> Stream[tuple[str, W]]:
    """`op.stateful_flat_map(step_id, up, mapper)` whose per-key state expires after `ttl_s`
    seconds without an item for that key."""
    return op.stateful(step_id, up, lambda resume: ExpiringLogic(mapper, ttl_s, resume))


def expiring_map(step_id: str, up: Stream[tuple[str, V]],
                 mapper: Callable[[S | None, V], tuple[S | None, W]],
                 ttl_s: float) -> Stream[tuple[str, W]]:
    """`op.stateful_map` with the same expiry: one output per item."""

    def flat(state: S | None, value: V) -> tuple[S | None, Iterable[W]]:
        state, out = mapper(state, value)
        return state, (out,)

    return expiring_flat_map(step_id, up, flat, ttl_s)
