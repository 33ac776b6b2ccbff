"""The fraud example's synthetic stream (its scenario.py), read through the example's own stream
declarations: determinism, labels, bad events, fraud and drift."""

from __future__ import annotations

import bisect
import json
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from fti.errors import EventError
from fti.features.project.decode import Rejection, StreamDecoder
from fti.features.project.loader import load_project
from tests.example_projects import EXAMPLES, scenario_module

FRAUD = scenario_module("fraud")
BAD_KINDS, HOME_COUNTRIES, Record = FRAUD.BAD_KINDS, FRAUD.HOME_COUNTRIES, FRAUD.Record
StreamSpec, generate, tx_index_of = FRAUD.StreamSpec, FRAUD.records, FRAUD.tx_index_of
NOW = datetime(2026, 1, 31, tzinfo=UTC)  # after every stream here; far-future checks use it
_STREAMS = load_project(EXAMPLES / "fraud").streams
_DECODERS = {name: StreamDecoder(stream) for name, stream in _STREAMS.items()}
Transaction = SimpleNamespace


def _decode(stream: str, raw: bytes) -> SimpleNamespace:
    """A record of `stream` as the example's declaration reads it (its event time as `ts`);
    EventError naming the rule when the declaration rejects it."""
    outcome = _DECODERS[stream].decode(raw, NOW.timestamp())
    if isinstance(outcome, Rejection):
        raise EventError(f"{outcome.rule}: {outcome.reason}")
    return SimpleNamespace(**{**outcome.values, "ts": datetime.fromtimestamp(outcome.time, UTC)})


def parse_transaction(raw: bytes) -> SimpleNamespace:
    return _decode("transactions", raw)


def parse_label(raw: bytes) -> SimpleNamespace:
    return _decode("labels", raw)


def _valid_txs(records: list[Record]) -> list[tuple[Record, Transaction]]:
    """The valid transactions of a stream, parsed, in stream order."""
    return [
        (r, parse_transaction(r.value))
        for r in records
        if r.kind == "transaction" and not r.bad
    ]


def _count_1h(txs: list[tuple[Record, Transaction]], *, include_self: bool) -> list[int]:
    """Per transaction: how many transactions of its card fall in the trailing hour."""
    seen: dict[str, list[float]] = defaultdict(list)
    counts = []
    for _, tx in txs:
        now, times = tx.ts.timestamp(), seen[tx.card_id]
        counts.append(len(times) - bisect.bisect_left(times, now - 3600) + int(include_self))
        times.append(now)
    return counts


@pytest.fixture(scope="module")
def drift_stream() -> list[Record]:
    """Default traffic with a drift half way; no bad events, so every index is a valid tx."""
    return list(generate(StreamSpec(count=8000, drift_at=4000)))


@pytest.fixture(scope="module")
def bad_stream() -> list[Record]:
    """A stream with 5% bad transactions."""
    return list(generate(StreamSpec(count=3000, drift_at=1500, bad_fraction=0.05, seed=11)))


def test_same_spec_gives_identical_records_and_another_seed_does_not() -> None:
    spec = StreamSpec(count=500, drift_at=250, bad_fraction=0.1)
    first, again = list(generate(spec)), list(generate(spec))
    other = list(generate(StreamSpec(count=500, drift_at=250, bad_fraction=0.1, seed=8)))
    assert first == again
    assert [r.value for r in first] == [r.value for r in again]
    assert [r.value for r in first] != [r.value for r in other]
    cards = [tx.card_id for _, tx in _valid_txs(list(generate(StreamSpec(count=100))))]
    other_cards = [tx.card_id for _, tx in _valid_txs(list(generate(StreamSpec(100, seed=8))))]
    same = [a == b for a, b in zip(cards, other_cards, strict=True)]
    assert sum(same) < 0.1 * len(same)  # the seed drives the traffic, not only the tx_id


def test_transactions_are_exactly_count_in_index_order_with_rising_event_time(
    drift_stream: list[Record],
) -> None:
    txs = [r for r in drift_stream if r.kind == "transaction"]
    assert [r.index for r in txs] == list(range(8000))
    assert [tx_index_of(json.loads(r.value)["tx_id"]) for r in txs] == list(range(8000))
    assert [r.drifted for r in txs] == [i >= 4000 for i in range(8000)]
    times = [tx.ts for _, tx in _valid_txs(drift_stream)]
    assert times == sorted(times) and times[0] > StreamSpec(count=1).start
    mean_gap = (times[-1] - times[0]).total_seconds() / (len(times) - 1)
    assert 5.0 < mean_gap < 7.0
    assert all(r.key == json.loads(r.value)["card_id"].encode() for r in txs)
    assert len(list(generate(StreamSpec(count=0)))) == 0


def test_each_valid_transaction_gets_one_label_released_once_stream_time_passes_it(
    bad_stream: list[Record],
) -> None:
    position: dict[str, int] = {}
    tx_time: dict[str, datetime] = {}
    last_tx_time: datetime | None = None
    label_times: list[datetime] = []
    for pos, r in enumerate(bad_stream):
        if r.kind == "transaction":
            if not r.bad:
                tx = parse_transaction(r.value)
                position[tx.tx_id], tx_time[tx.tx_id] = pos, tx.ts
                assert not label_times or tx.ts >= label_times[-1]  # labels are not early
                last_tx_time = tx.ts
            continue
        label = parse_label(r.value)
        assert r.key == label.tx_id.encode() and label.is_fraud == r.is_fraud
        assert position[label.tx_id] < pos  # its transaction came first, and was valid
        assert tx_index_of(label.tx_id) == r.index
        delay = (label.ts - tx_time[label.tx_id]).total_seconds()
        assert 120.0 <= delay <= 900.0
        assert label.ts > last_tx_time  # not held back past a later transaction
        label_times.append(label.ts)
    labelled = [json.loads(r.value)["tx_id"] for r in bad_stream if r.kind == "label"]
    assert sorted(labelled) == sorted(position)  # exactly one label per valid transaction
    assert label_times == sorted(label_times)


def test_bad_records_are_all_rejected_and_good_ones_all_accepted(bad_stream: list[Record]) -> None:
    txs = [r for r in bad_stream if r.kind == "transaction"]
    bad = [r for r in txs if r.bad]
    assert 0.035 <= len(bad) / len(txs) <= 0.065
    assert not any(r.is_fraud for r in bad)
    assert any(r.key is None for r in bad) and any(r.key is not None for r in bad)
    reasons: Counter[str] = Counter()
    for r in bad:
        with pytest.raises(EventError) as err:
            parse_transaction(r.value)
        rule, _, reason = str(err.value).partition(": ")
        reasons[f"{rule} {reason.split(' ')[0]}"] += 1
    assert len(reasons) >= 6, reasons  # many rules are exercised, not one kind repeated
    assert len(bad) >= len(BAD_KINDS)
    good = _valid_txs(bad_stream)
    assert len(good) == len(txs) - len(bad)
    epoch_ms = sum(isinstance(json.loads(r.value)["ts"], int) for r, _ in good)
    assert 0.12 < epoch_ms / len(good) < 0.28  # both timestamp forms are produced


def test_fraud_rate_before_and_after_drift(drift_stream: list[Record]) -> None:
    txs = [r for r in drift_stream if r.kind == "transaction"]
    before = [r.is_fraud for r in txs if not r.drifted]
    after = [r.is_fraud for r in txs if r.drifted]
    assert 0.015 <= statistics.mean(before) <= 0.05
    assert 0.06 <= statistics.mean(after) <= 0.15


def test_before_drift_fraud_is_online_foreign_and_expensive(drift_stream: list[Record]) -> None:
    txs = [(r, tx) for r, tx in _valid_txs(drift_stream) if not r.drifted]
    countries: dict[str, Counter[str]] = defaultdict(Counter)
    for r, tx in txs:
        countries[tx.card_id][tx.country] += 0 if r.is_fraud else 1
    home = {card: seen.most_common(1)[0][0] for card, seen in countries.items()}
    fraud = [tx for r, tx in txs if r.is_fraud]
    legit = [tx for r, tx in txs if not r.is_fraud]
    assert statistics.median(t.amount for t in fraud) > 10 * statistics.median(
        t.amount for t in legit
    )
    assert all(t.channel == "online" for t in fraud)
    assert sum(t.country != home.get(t.card_id) for t in fraud) / len(fraud) > 0.9
    assert sum(t.amount > 300 for t in legit) / len(legit) > 0.015  # amount alone won't do
    assert sum(t.country in HOME_COUNTRIES for t in legit) / len(legit) > 0.9


def test_after_drift_fraud_comes_in_bursts_with_a_high_1h_count(
    drift_stream: list[Record],
) -> None:
    txs = _valid_txs(drift_stream)
    prior = _count_1h(txs, include_self=False)
    fraud = [c for (r, _), c in zip(txs, prior, strict=True) if r.drifted and r.is_fraud]
    legit = [c for (r, _), c in zip(txs, prior, strict=True) if r.drifted and not r.is_fraud]
    assert statistics.mean(fraud) > 3 * statistics.mean(legit)
    counted = _count_1h(txs, include_self=True)  # as the tx_count_1h feature counts
    fraud = [c for (r, _), c in zip(txs, counted, strict=True) if r.drifted and r.is_fraud]
    legit = [c for (r, _), c in zip(txs, counted, strict=True) if r.drifted and not r.is_fraud]
    assert sum(c >= 5 for c in fraud) / len(fraud) > 0.5
    assert sum(c >= 5 for c in legit) / len(legit) < 0.1
    burst = [tx for r, tx in txs if r.drifted and r.is_fraud and tx.channel != "online"]
    assert len(burst) > 0.8 * len(fraud)
    assert all(5 <= t.amount <= 60 and t.channel in ("pos", "atm") for t in burst)


def test_a_burst_is_seconds_apart_and_nearly_consecutive_in_the_stream(
    drift_stream: list[Record],
) -> None:
    previous: dict[str, tuple[int, datetime]] = {}
    gaps_s, gaps_index = [], []
    for r, tx in _valid_txs(drift_stream):
        before = previous.get(tx.card_id)
        previous[tx.card_id] = (r.index, tx.ts)
        if r.is_fraud and tx.channel != "online" and before is not None:
            gaps_s.append((tx.ts - before[1]).total_seconds())
            gaps_index.append(r.index - before[0])
    assert len(gaps_s) > 200
    assert statistics.median(gaps_s) < 20.0
    assert statistics.median(gaps_index) <= 2


def test_no_drift_means_no_bursts(drift_stream: list[Record]) -> None:
    records = list(generate(StreamSpec(count=3000)))
    txs = _valid_txs(records)
    assert not any(r.drifted for r, _ in txs)
    assert all(tx.channel == "online" for r, tx in txs if r.is_fraud)
    assert [r.value for r in records[:50]] == [r.value for r in drift_stream[:50]]


def test_tx_index_of_round_trips_and_rejects_other_ids() -> None:
    assert tx_index_of("tx-7-00000042") == 42
    assert tx_index_of("tx--1-00012345") == 12345
    with pytest.raises(ValueError, match="not a synthetic tx_id"):
        tx_index_of("t1")


@pytest.mark.parametrize(
    "changes",
    [{"count": -1}, {"bad_fraction": 1.5}, {"label_delay_s": (900.0, 120.0)}, {"cards": 0}],
)
def test_an_impossible_spec_is_rejected(changes: dict) -> None:
    spec = StreamSpec(**{"count": 10, **changes})
    with pytest.raises(ValueError, match="invalid StreamSpec"):
        next(generate(spec))


def test_start_time_is_honoured() -> None:
    start = datetime(2026, 1, 10, 12, tzinfo=UTC)
    txs = _valid_txs(list(generate(StreamSpec(count=50, start=start))))
    assert start < txs[0][1].ts < start + timedelta(minutes=2)
