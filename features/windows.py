"""Per-card windowed features by event time: pure functions, no I/O.

A card's window holds its transactions of the last 24 h of event time. Features of a
transaction are computed from the window entries at or before its event time plus the
transaction itself, so a late event sees the same past it would have seen on time, and the
inference flow, given the same window from the online store, computes the same numbers.

>>> from datetime import datetime, timezone
>>> t0 = datetime(2026, 1, 1, 12, tzinfo=timezone.utc).timestamp()
>>> w = CardWindow()
>>> w, f = update_window(w, WindowEntry(t0, 10.0, "DE", "a"))
>>> w, f = update_window(w, WindowEntry(t0 + 60, 30.0, "FR", "b"))
>>> f["tx_count_1h"], f["amount_mean_1h"], f["secs_since_prev"], f["is_new_country"]
(2.0, 20.0, 60.0, 1.0)
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from fti.features.definitions import CHANNEL_CODES

HOUR_S = 3600.0
DAY_S = 86400.0


class WindowEntry(NamedTuple):
    """What the window remembers of one transaction (a tuple: cheap to build and compare)."""

    ts: float  # event time, epoch seconds
    amount: float
    country: str
    tx_id: str


@dataclass
class CardWindow:
    """A card's transactions within 24 h of its newest one, sorted by event time."""

    entries: list[WindowEntry] = field(default_factory=list)

    def to_json(self) -> list[list[Any]]:
        """Plain lists, for the online store."""
        return entries_to_json(self.entries)

    def __deepcopy__(self, memo: dict[int, Any]) -> CardWindow:
        # Bytewax deep-copies state for every snapshot; entries are immutable, so a new list
        # of the same entries is a full copy at a fraction of the cost.
        return CardWindow(list(self.entries))

    @classmethod
    def from_json(cls, rows: list[list[Any]]) -> CardWindow:
        """Inverse of `to_json`."""
        return cls([WindowEntry(*r) for r in rows])


def entries_to_json(entries: list[WindowEntry] | tuple[WindowEntry, ...]) -> list[list[Any]]:
    """Window entries as plain lists (the online store's format)."""
    return [[e.ts, e.amount, e.country, e.tx_id] for e in entries]


def window_features(past: Sequence[Sequence[Any]], current: WindowEntry) -> dict[str, float]:
    """Aggregates over `past` (entries before `current`, any order) plus `current` itself.

    Entries are read by position (ts, amount, country, tx_id), so the online store's plain
    lists work as well as `WindowEntry` tuples.
    """
    t = current.ts
    day_start, hour_start = t - DAY_S, t - HOUR_S
    n_day = n_hour = 1
    sum_day = sum_hour = 0.0
    previous: float | None = None
    past_countries: set[str] = set()
    for e in past:  # one pass: this runs once per event in the feature and inference flows
        ts = e[0]
        if ts > t:
            continue
        if previous is None or ts > previous:
            previous = ts
        if ts > day_start:
            n_day += 1
            amount = e[1]
            sum_day += amount
            past_countries.add(e[2])
            if ts > hour_start:
                n_hour += 1
                sum_hour += amount
    sum_day += current.amount
    sum_hour += current.amount
    return {
        "tx_count_1h": float(n_hour),
        "amount_sum_1h": sum_hour,
        "amount_mean_1h": sum_hour / n_hour,
        "tx_count_24h": float(n_day),
        "amount_sum_24h": sum_day,
        "amount_mean_24h": sum_day / n_day,
        "secs_since_prev": min(t - previous, DAY_S) if previous is not None else DAY_S,
        "is_new_country": float(bool(past_countries) and current.country not in past_countries),
        "distinct_countries_24h": float(len(past_countries | {current.country})),
    }


def event_features(amount: float, channel: str, ts: datetime) -> dict[str, float]:
    """Features computed from the event alone (on-demand features)."""
    return {
        "amount": amount,
        "channel_code": float(CHANNEL_CODES.get(channel, -1)),
        "hour_of_day": float(ts.astimezone(UTC).hour),
    }


def past_of(entries: Sequence[Sequence[Any]], current: WindowEntry) -> list[Sequence[Any]]:
    """Window entries that precede `current` in event time (ties: earlier arrival first).

    `current` itself and anything the window learnt after it are excluded, so the result is
    the same whether or not the feature flow has already processed `current`. Entries are
    `WindowEntry` tuples or the online store's plain lists.
    """
    past = []
    t, tx_id = current.ts, current.tx_id
    for entry in entries:
        if entry[3] == tx_id:
            break  # entries after it arrived later, or are later in event time
        if entry[0] <= t:
            past.append(entry)
    return past


def update_window(
    window: CardWindow, entry: WindowEntry, max_entries: int | None = None
) -> tuple[CardWindow, dict[str, float]]:
    """Add `entry` to `window`; return the pruned window and the entry's window features.

    The window keeps 24 h of events and, with `max_entries`, at most that many (the oldest
    are dropped first), so an entity's state is bounded whatever its rate.

    >>> w = CardWindow()
    >>> for i in range(5):
    ...     w, _ = update_window(w, WindowEntry(float(i), 1.0, "DE", f"t{i}"), max_entries=3)
    >>> [e.tx_id for e in w.entries]
    ['t2', 't3', 't4']
    """
    entries = window.entries
    features = window_features(past_of(entries, entry), entry)
    if any(e.tx_id == entry.tx_id for e in entries):
        return window, features  # a replayed event changes nothing
    if not entries or entries[-1].ts <= entry.ts:
        entries.append(entry)  # the usual case: in event-time order
    else:
        entries.insert(bisect.bisect_right([e.ts for e in entries], entry.ts), entry)
    oldest_kept = entries[-1].ts - DAY_S
    if entries[0].ts <= oldest_kept:
        window.entries = entries = [e for e in entries if e.ts > oldest_kept]
    if max_entries is not None and len(entries) > max_entries:
        del entries[: len(entries) - max_entries]
    return window, features
