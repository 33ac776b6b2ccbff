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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from features.definitions import CHANNEL_CODES

HOUR_S = 3600.0
DAY_S = 86400.0


@dataclass(frozen=True, order=True)
class WindowEntry:
    """What the window remembers of one transaction."""

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
        return [[e.ts, e.amount, e.country, e.tx_id] for e in self.entries]

    @classmethod
    def from_json(cls, rows: list[list[Any]]) -> CardWindow:
        """Inverse of `to_json`."""
        return cls([WindowEntry(float(r[0]), float(r[1]), str(r[2]), str(r[3])) for r in rows])


def window_features(past: list[WindowEntry], current: WindowEntry) -> dict[str, float]:
    """Aggregates over `past` (entries before `current`, any order) plus `current` itself."""
    in_day = [e for e in past if current.ts - DAY_S < e.ts <= current.ts] + [current]
    in_hour = [e for e in in_day if e.ts > current.ts - HOUR_S]
    previous = max((e.ts for e in past if e.ts <= current.ts), default=None)
    past_countries = {e.country for e in in_day[:-1]}
    sum_1h = sum(e.amount for e in in_hour)
    sum_24h = sum(e.amount for e in in_day)
    return {
        "tx_count_1h": float(len(in_hour)),
        "amount_sum_1h": sum_1h,
        "amount_mean_1h": sum_1h / len(in_hour),
        "tx_count_24h": float(len(in_day)),
        "amount_sum_24h": sum_24h,
        "amount_mean_24h": sum_24h / len(in_day),
        "secs_since_prev": min(current.ts - previous, DAY_S) if previous is not None else DAY_S,
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


def past_of(window: CardWindow, current: WindowEntry) -> list[WindowEntry]:
    """Entries of `window` that precede `current` in event time (ties: earlier arrival first).

    `current` itself and anything the window learnt after it are excluded, so the result is
    the same whether or not the feature flow has already processed `current`.
    """
    past = []
    for entry in window.entries:
        if entry.tx_id == current.tx_id:
            break  # entries after it arrived later, or are later in event time
        if entry.ts <= current.ts:
            past.append(entry)
    return past


def update_window(window: CardWindow, entry: WindowEntry) -> tuple[CardWindow, dict[str, float]]:
    """Add `entry` to `window`; return the pruned window and the entry's window features."""
    features = window_features(past_of(window, entry), entry)
    if any(e.tx_id == entry.tx_id for e in window.entries):
        return window, features  # a replayed event changes nothing
    position = bisect.bisect_right([e.ts for e in window.entries], entry.ts)
    window.entries.insert(position, entry)
    newest = window.entries[-1].ts
    window.entries = [e for e in window.entries if e.ts > newest - DAY_S]
    return window, features
