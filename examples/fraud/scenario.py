"""The fraud example's demo stream for `fti demo`: seeded synthetic card transactions and
their late labels, with fraud drift and malformed events.

Before ``drift_at`` fraud is "pattern A": online, in a foreign country, high amount (~3% of
transactions). From ``drift_at`` on it is mostly "pattern B": card-testing bursts of 5-10
ordinary-amount pos/atm transactions of one card in its home country within a minute or two
(~10% of transactions), which a model trained on pattern A has not seen; pattern A goes on at
~0.5%. A ``bad_fraction`` of transactions is malformed or invalid (each one is rejected by the
`transactions` stream's rules in definitions.py), has no label, and is never fraud.

Event times start at ``spec.start`` (2026-01-01 by default). The stream's rules reject events
more than an hour in the future of ``now``; real runs happen after 2026-01, so wall-clock
``now`` works.

>>> out = list(records(StreamSpec(count=200, drift_at=100, bad_fraction=0.1)))
>>> sum(r.kind == "transaction" for r in out)
200
>>> sum(r.kind == "label" for r in out) == sum(r.kind == "transaction" and not r.bad
...                                            for r in out)
True
>>> tx_index_of("tx-7-00000042")
42
"""


from __future__ import annotations

import heapq
import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fti.ops.scenario import DemoRecord

HOME_COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "PL")
FOREIGN_COUNTRIES = ("US", "BR", "RO", "NG", "GB", "TR", "CN", "RU")
MERCHANTS = 200
RATE_A_BEFORE = 0.03  # pattern A fraud per normal transaction before drift
RATE_A_AFTER = 0.005  # ... and after drift
BURST_START = 0.014  # chance that a normal transaction after drift is followed by a burst
BURST_LEN = (5, 10)
BURST_CONTINUE = 0.8  # chance that the next slot continues an active burst
BAD_KINDS = (
    "truncated", "not_object", "missing_field", "amount_string", "card_id_list",
    "nan_amount", "huge_amount", "negative_amount", "future_ts", "unknown_channel",
    # poison: bytes that once stopped a flow, each a class of its own
    "ts_overflows_after_utc", "ts_epoch_out_of_range", "deep_nesting", "huge_integer",
    "infinity_literal", "invalid_utf8", "empty", "nul_bytes",
)  # fmt: skip
#: Raw values of the poison kinds that are not a transaction with one field changed.
_POISON_BYTES = {
    "deep_nesting": b'{"tx_id": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "invalid_utf8": b'{"tx_id": "\xff\xfe"}',
    "empty": b"",
    "nul_bytes": b"\x00" * 32,
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class StreamSpec:
    """What to generate; the same spec always yields byte-identical records."""

    count: int  # number of transaction events (bad ones included)
    drift_at: int | None = None  # transaction index from which the fraud pattern shifts
    bad_fraction: float = 0.0  # fraction of transaction events that are malformed/invalid
    seed: int = 7
    cards: int = 400
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    mean_gap_s: float = 6.0  # mean event-time gap between consecutive transactions
    label_delay_s: tuple[float, float] = (120.0, 900.0)  # label time = tx time + uniform delay


@dataclass(frozen=True)
class Record:
    """One event to produce: a transaction (topic `transactions`) or a label (`labels`)."""

    kind: Literal["transaction", "label"]
    key: bytes | None  # card_id for transactions (bad ones may have None), tx_id for labels
    value: bytes  # JSON bytes (or deliberately malformed bytes for bad events)
    index: int  # transaction index 0..count-1 (for labels: index of their transaction)
    drifted: bool  # True for transactions (and their labels) with index >= drift_at
    bad: bool  # True if this transaction is invalid and must be rejected by parse_transaction
    is_fraud: bool  # ground truth (False for bad)


def tx_index_of(tx_id: str) -> int:
    """Recover the transaction index from a generated ``tx-{seed}-{index:08d}`` id.

    >>> tx_index_of("tx--3-00001234")
    1234
    """
    prefix, _, digits = tx_id.rpartition("-")
    if not prefix.startswith("tx-") or not digits.isdigit():
        raise ValueError(f"not a synthetic tx_id: {tx_id!r}")
    return int(digits)


def _format_ts(ms: int, rng: random.Random) -> str | int:
    """Event time as RFC 3339 with Z, or (for ~20%) as integer epoch milliseconds."""
    if rng.random() < 0.2:
        return ms
    text = (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _dumps(obj: Any) -> bytes:
    """Compact, deterministic JSON bytes (NaN is written as the literal ``NaN``)."""
    return json.dumps(obj, separators=(",", ":")).encode()


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    """A lognormal amount with the given median, rounded to cents and at least 0.5."""
    return round(max(0.5, rng.lognormvariate(math.log(median), sigma)), 2)


def _body(
    card: str, merchant: str, amount: float, currency: str, country: str, channel: str
) -> dict:
    """The fields of a transaction between ``tx_id`` and ``ts``, in topic order."""
    keys = ("card_id", "merchant_id", "amount", "currency", "country", "channel")
    return dict(zip(keys, (card, merchant, amount, currency, country, channel), strict=True))


@dataclass
class _Burst:
    """A card-testing burst in progress: one card, a few merchants, one channel."""

    card: int
    remaining: int
    merchants: list[int]
    channel: str


class _Traffic:
    """Draws the valid transactions: legit traffic, pattern A fraud and pattern B bursts."""

    def __init__(self, rng: random.Random, cards: int) -> None:
        self.rng = rng
        self.homes = [rng.choice(HOME_COUNTRIES) for _ in range(cards)]
        self.burst: _Burst | None = None

    def _tx(self, card: int, amount: float, country: str, channel: str, merchant: int) -> dict:
        """A transaction body (no ``tx_id``/``ts``); currency is mostly EUR."""
        currency = self.rng.choices(("EUR", "USD", "GBP"), (0.9, 0.05, 0.05))[0]
        return _body(f"card-{card:04d}", f"m-{merchant:03d}", amount, currency, country, channel)

    def _legit(self) -> dict:
        """An ordinary purchase: mostly home country, mostly small, sometimes large."""
        rng = self.rng
        card = rng.randrange(len(self.homes))
        country = self.homes[card] if rng.random() < 0.96 else rng.choice(FOREIGN_COUNTRIES)
        channel = rng.choices(("pos", "online", "atm"), (0.6, 0.35, 0.05))[0]
        amount = _lognormal(rng, 700, 0.5) if rng.random() < 0.02 else _lognormal(rng, 35, 0.9)
        return self._tx(card, amount, country, channel, rng.randrange(MERCHANTS))

    def _fraud_a(self) -> dict:
        """Pattern A: online, foreign country, high amount."""
        rng = self.rng
        card = rng.randrange(len(self.homes))
        foreign = [c for c in HOME_COUNTRIES + FOREIGN_COUNTRIES if c != self.homes[card]]
        amount = _lognormal(rng, 800, 0.4)
        return self._tx(card, amount, rng.choice(foreign), "online", rng.randrange(MERCHANTS))

    def _burst_tx(self) -> dict:
        """Pattern B: the next transaction of the active card-testing burst."""
        burst = self.burst
        assert burst is not None
        burst.remaining -= 1
        if burst.remaining == 0:
            self.burst = None
        amount = round(self.rng.uniform(5.0, 60.0), 2)
        merchant = self.rng.choice(burst.merchants)
        return self._tx(burst.card, amount, self.homes[burst.card], burst.channel, merchant)

    def next(self, drifted: bool) -> tuple[dict, bool]:
        """The next valid transaction (without ``tx_id``/``ts``) and whether it is fraud."""
        rng = self.rng
        if self.burst is not None and rng.random() < BURST_CONTINUE:
            return self._burst_tx(), True
        if rng.random() < (RATE_A_AFTER if drifted else RATE_A_BEFORE):
            tx, fraud = self._fraud_a(), True
        else:
            tx, fraud = self._legit(), False
        if drifted and self.burst is None and rng.random() < BURST_START:
            merchants = [rng.randrange(MERCHANTS) for _ in range(2)]
            card, length = rng.randrange(len(self.homes)), rng.randint(*BURST_LEN)
            self.burst = _Burst(card, length, merchants, rng.choice(("pos", "atm")))
        return tx, fraud


def _bad_value(
    kind: str, rng: random.Random, tx_id: str, card: str, ts_ms: int
) -> tuple[bytes | None, bytes]:
    """Key and value of a malformed or invalid transaction of the given kind."""
    key: bytes | None = card.encode()
    amount = round(rng.uniform(5, 200), 2)
    tx = {"tx_id": tx_id, **_body(card, "m-000", amount, "EUR", "DE", "pos")}
    tx["ts"] = _format_ts(ts_ms, rng)
    if kind == "truncated":
        text = _dumps(tx)
        return key, text[: rng.randrange(1, len(text) - 1)]
    if kind == "not_object":
        return None, _dumps([tx["tx_id"], tx["amount"]])
    if kind in _POISON_BYTES:
        return key, _POISON_BYTES[kind]
    if kind in ("huge_integer", "infinity_literal"):
        literal = "1" + "0" * 5000 if kind == "huge_integer" else "Infinity"
        return key, _dumps({**tx, "amount": 0}).replace(b'"amount":0', b'"amount":' +
                                                           literal.encode(), 1)
    if kind == "missing_field":
        del tx["card_id"]
        key = None
    elif kind == "card_id_list":
        tx["card_id"], key = [tx["card_id"]], None
    elif kind == "amount_string":
        tx["amount"] = f"{tx['amount']}x"
    else:
        field, value = {
            "nan_amount": ("amount", float("nan")),
            "huge_amount": ("amount", 1e12),
            "negative_amount": ("amount", -abs(tx["amount"]) - 0.01),
            "future_ts": ("ts", "2100-01-01T00:00:00Z"),
            "ts_overflows_after_utc": ("ts", "0001-01-01T00:00:00+01:00"),
            "ts_epoch_out_of_range": ("ts", 10**20),
            "unknown_channel": ("channel", "teleport"),
        }[kind]
        tx[field] = value
    return key, _dumps(tx)


def _check(spec: StreamSpec) -> None:
    """Reject a spec that cannot be generated, naming the field and the rule."""
    low, high = spec.label_delay_s
    problems = {
        "count must be >= 0": spec.count < 0,
        "cards must be >= 1": spec.cards < 1,
        "mean_gap_s must be > 0": not spec.mean_gap_s > 0,
        "bad_fraction must be within [0, 1]": not 0.0 <= spec.bad_fraction <= 1.0,
        "label_delay_s must be (low, high) with 0 <= low <= high": not 0 <= low <= high,
        "start must be timezone-aware": spec.start.tzinfo is None,
    }
    broken = [rule for rule, bad in problems.items() if bad]
    if broken:
        raise ValueError(f"invalid StreamSpec ({'; '.join(broken)}): {spec}")


def records(spec: StreamSpec) -> Iterator[Record]:
    """Yield ``spec.count`` transactions in order, each valid one's label once it is due."""
    _check(spec)
    rng = random.Random(f"fti-synthetic-{spec.seed}")
    bad_rng = random.Random(f"fti-synthetic-bad-{spec.seed}")
    traffic = _Traffic(rng, spec.cards)
    start_ms = (spec.start - _EPOCH) // timedelta(milliseconds=1)
    clock_s, n_bad = 0.0, 0
    pending: list[tuple[int, int, Record]] = []  # (label ts ms, index, record)
    for index in range(spec.count):
        clock_s += rng.expovariate(1.0 / spec.mean_gap_s)
        ts_ms = start_ms + round(clock_s * 1000)
        while pending and pending[0][0] <= ts_ms:
            yield heapq.heappop(pending)[2]
        drifted = spec.drift_at is not None and index >= spec.drift_at
        tx_id = f"tx-{spec.seed}-{index:08d}"
        if bad_rng.random() < spec.bad_fraction:
            kind = BAD_KINDS[n_bad % len(BAD_KINDS)]
            n_bad += 1
            card = f"card-{bad_rng.randrange(spec.cards):04d}"
            key, value = _bad_value(kind, bad_rng, tx_id, card, ts_ms)
            yield Record("transaction", key, value, index, drifted, True, False)
            continue
        tx, fraud = traffic.next(drifted)
        tx = {"tx_id": tx_id, **tx, "ts": _format_ts(ts_ms, rng)}
        key = tx["card_id"].encode()
        yield Record("transaction", key, _dumps(tx), index, drifted, False, fraud)
        label_ms = ts_ms + round(rng.uniform(*spec.label_delay_s) * 1000)
        label = {"tx_id": tx_id, "is_fraud": fraud, "ts": _format_ts(label_ms, rng)}
        record = Record("label", tx_id.encode(), _dumps(label), index, drifted, False, fraud)
        heapq.heappush(pending, (label_ms, index, record))
    while pending:
        yield heapq.heappop(pending)[2]


#: The example's stream names by record kind.
STREAMS = {"transaction": "transactions", "label": "labels"}


def generate(count: int, drift_at: int, bad_fraction: float, seed: int) -> Iterator[DemoRecord]:
    """The records to produce, in order: transactions and, when due, their labels."""
    spec = StreamSpec(count=count, drift_at=drift_at, bad_fraction=bad_fraction, seed=seed)
    for r in records(spec):
        yield DemoRecord(STREAMS[r.kind], r.key, r.value, r.index, r.drifted, r.bad)


def index_of(event_id: str) -> int:
    """The position of a generated transaction in the stream."""
    return tx_index_of(event_id)
