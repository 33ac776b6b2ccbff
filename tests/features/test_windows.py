"""Tests of per-card windows and serving vectors, incl. training/serving consistency."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fti.connectors.kafka.reader import KafkaRecord
from fti.connectors.online import OnlineRow, SqliteOnlineStore
from fti.events import Transaction
from fti.features.definitions import FEATURE_COLUMNS
from fti.features.serving import feature_vector
from fti.features.windows import DAY_S, HOUR_S, CardWindow, WindowEntry, update_window
from fti.flows.features import _online_row, card_features
from fti.flows.records import Decoded

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC).timestamp()
WINDOW_COLUMNS = [c for c in FEATURE_COLUMNS if c not in ("amount", "channel_code", "hour_of_day")]


def _entry(
    offset_s: float, amount: float = 10.0, country: str = "DE", tx_id: str = ""
) -> WindowEntry:
    return WindowEntry(T0 + offset_s, amount, country, tx_id or f"tx@{offset_s:g}")


def _feed(*entries: WindowEntry) -> tuple[CardWindow, dict[str, float]]:
    """Run entries through `update_window` in order; return the window and the last features."""
    window, features = CardWindow(), {}
    for entry in entries:
        window, features = update_window(window, entry)
    return window, features


def test_first_transaction_sees_only_itself() -> None:
    _, f = _feed(_entry(0, 25.0))
    assert f == {
        "tx_count_1h": 1.0, "amount_sum_1h": 25.0, "amount_mean_1h": 25.0,
        "tx_count_24h": 1.0, "amount_sum_24h": 25.0, "amount_mean_24h": 25.0,
        "secs_since_prev": DAY_S, "is_new_country": 0.0, "distinct_countries_24h": 1.0,
    }


def test_counts_sums_and_means_over_1h_and_24h() -> None:
    _, f = _feed(
        _entry(-5 * HOUR_S, 100.0), _entry(-1800, 20.0), _entry(-60, 30.0), _entry(0, 10.0)
    )
    assert (f["tx_count_1h"], f["amount_sum_1h"], f["amount_mean_1h"]) == (3.0, 60.0, 20.0)
    assert (f["tx_count_24h"], f["amount_sum_24h"], f["amount_mean_24h"]) == (4.0, 160.0, 40.0)
    assert f["secs_since_prev"] == 60.0


@pytest.mark.parametrize(
    ("offset_s", "in_1h", "in_24h"),
    [
        (-HOUR_S, False, True),  # exactly 1 h earlier: outside (t-1h, t]
        (-HOUR_S + 0.001, True, True),
        (-DAY_S, False, False),  # exactly 24 h earlier: outside (t-24h, t]
        (-DAY_S + 0.001, False, True),
        (0, True, True),  # same instant, arrived earlier
    ],
)
def test_window_boundaries(offset_s: float, in_1h: bool, in_24h: bool) -> None:
    _, f = _feed(_entry(offset_s, 5.0, tx_id="old"), _entry(0, 1.0, tx_id="now"))
    assert f["tx_count_1h"] == 1.0 + in_1h
    assert f["tx_count_24h"] == 1.0 + in_24h
    assert f["amount_sum_24h"] == 1.0 + 5.0 * in_24h


@pytest.mark.parametrize(
    ("gap_s", "expected"), [(0, 0.0), (90.5, 90.5), (DAY_S - 1, DAY_S - 1), (3 * DAY_S, DAY_S)]
)
def test_secs_since_prev_is_capped_at_a_day(gap_s: float, expected: float) -> None:
    _, f = _feed(_entry(-gap_s, tx_id="prev"), _entry(0, tx_id="now"))
    assert f["secs_since_prev"] == expected


def test_new_country_and_distinct_countries() -> None:
    window, f = _feed(_entry(-3 * HOUR_S, country="DE"), _entry(-2 * HOUR_S, country="DE"))
    assert (f["is_new_country"], f["distinct_countries_24h"]) == (0.0, 1.0)
    window, f = update_window(window, _entry(-HOUR_S, country="FR"))
    assert (f["is_new_country"], f["distinct_countries_24h"]) == (1.0, 2.0)
    window, f = update_window(window, _entry(0, country="DE"))
    assert (f["is_new_country"], f["distinct_countries_24h"]) == (0.0, 2.0)


def test_a_country_seen_more_than_24h_ago_is_new_again() -> None:
    _, f = _feed(
        _entry(-DAY_S - 1, country="FR"), _entry(-60, country="DE"), _entry(0, country="FR")
    )
    assert (f["is_new_country"], f["distinct_countries_24h"]) == (1.0, 2.0)


def test_late_event_sees_only_entries_at_or_before_its_event_time() -> None:
    window, _ = _feed(_entry(-2 * HOUR_S, 1.0), _entry(-30 * 60, 2.0), _entry(0, 4.0, "FR"))
    window, f = update_window(window, _entry(-HOUR_S, 8.0, tx_id="late"))
    assert (f["tx_count_24h"], f["amount_sum_24h"]) == (2.0, 9.0)
    assert (f["tx_count_1h"], f["secs_since_prev"]) == (1.0, HOUR_S)
    assert f["distinct_countries_24h"] == 1.0
    assert [e.tx_id for e in window.entries].index("late") == 1  # kept in event-time order


def test_replay_of_the_same_tx_id_changes_nothing() -> None:
    window, first = _feed(_entry(-60, 5.0), _entry(0, 50.0, tx_id="dup"))
    window, _ = update_window(window, _entry(30, 7.0))
    before = window.to_json()
    window, again = update_window(window, _entry(0, 50.0, tx_id="dup"))
    assert window.to_json() == before
    assert again == first
    assert (first["tx_count_1h"], first["amount_sum_1h"]) == (2.0, 55.0)


def test_pruning_keeps_only_24h_of_the_newest_entry() -> None:
    window, _ = _feed(*[_entry(h * HOUR_S, tx_id=f"h{h}") for h in range(0, 30)])
    newest = window.entries[-1].ts
    assert [e.tx_id for e in window.entries] == [f"h{h}" for h in range(6, 30)]
    assert all(newest - DAY_S < e.ts <= newest for e in window.entries)


def test_a_late_event_older_than_the_kept_day_is_not_kept() -> None:
    window, _ = _feed(_entry(0, tx_id="a"), _entry(DAY_S, tx_id="b"))
    window, f = update_window(window, _entry(-60, tx_id="ancient"))
    assert [e.tx_id for e in window.entries] == ["b"]
    assert f["tx_count_24h"] == 1.0


def test_card_window_json_round_trip() -> None:
    window, _ = _feed(_entry(0, 1.5, "DE", "a"), _entry(60, 2.25, "FR", "b"))
    rows = window.to_json()
    assert rows == [[T0, 1.5, "DE", "a"], [T0 + 60, 2.25, "FR", "b"]]
    assert CardWindow.from_json(rows) == window
    assert CardWindow.from_json([]) == CardWindow()


# --- training/serving consistency -------------------------------------------------------


def _tx(tx_id: str, card: str, ts: float, amount: float, channel: str, country: str) -> Transaction:
    return Transaction(tx_id=tx_id, card_id=card, merchant_id="m", amount=amount,
                       currency="EUR", country=country, channel=channel,
                       ts=datetime.fromtimestamp(ts, tz=UTC))


def _random_stream(seed: int, n: int = 300) -> list[tuple[Transaction, bool]]:
    """Transactions of 3 cards in arrival order, each with whether it arrived in order.

    Gaps are drawn so that some fall inside 1 h, some beyond 24 h; about 15 % of events are
    delivered late, up to 30 h behind; a few share an event time with the one before.
    """
    rng = random.Random(seed)
    clock, events = T0, []
    for i in range(n):
        clock += rng.choice([0.0, rng.uniform(1, 600), rng.uniform(600, 4 * HOUR_S),
                             rng.uniform(20 * HOUR_S, 30 * HOUR_S)])
        ts = clock - rng.uniform(0, 30 * HOUR_S) if rng.random() < 0.15 else clock
        events.append(_tx(f"tx{i}", rng.choice("abc"), round(ts, 3),
                          round(rng.uniform(1, 500), 2), rng.choice(["pos", "online", "atm"]),
                          rng.choice(["DE", "FR", "NL"])))
    newest: dict[str, float] = {}
    stream = []
    for tx in events:
        ts = tx.ts.timestamp()
        stream.append((tx, ts >= newest.get(tx.card_id, ts)))
        newest[tx.card_id] = max(ts, newest.get(tx.card_id, ts))
    return stream


def _served(tx: Transaction, window: CardWindow) -> dict[str, float]:
    row = OnlineRow(tx.card_id, tx.ts.timestamp(), "any", {}, window.to_json())
    return dict(zip(FEATURE_COLUMNS, feature_vector(tx, row), strict=True))


def test_feature_vector_follows_feature_columns() -> None:
    tx = _tx("t1", "c1", T0, 20.0, "online", "DE")
    vector = dict(zip(FEATURE_COLUMNS, feature_vector(tx, None), strict=True))
    assert vector["amount"] == 20.0
    assert vector["channel_code"] == 1.0
    assert vector["hour_of_day"] == 12.0
    assert vector["tx_count_1h"] == 1.0


@pytest.mark.parametrize("seed", range(8))
def test_serving_features_match_training_features_before_and_after(seed: int) -> None:
    """In-order and late events alike: the window state just before or just after the feature
    flow processed a transaction gives the serving path the same features as its training row.
    """
    stream = _random_stream(seed)
    assert 0 < sum(not in_order for _, in_order in stream) < len(stream) // 2
    windows: dict[str, CardWindow] = {}
    for tx, _ in stream:
        window = windows.get(tx.card_id, CardWindow())
        before = _served(tx, window)
        entry = WindowEntry(tx.ts.timestamp(), tx.amount, tx.country, tx.tx_id)
        window, training = update_window(CardWindow.from_json(window.to_json()), entry)
        windows[tx.card_id] = window
        after = _served(tx, window)
        assert {k: before[k] for k in WINDOW_COLUMNS} == training, tx.tx_id
        assert {k: after[k] for k in WINDOW_COLUMNS} == training, tx.tx_id
        assert before["amount"] == after["amount"] == tx.amount


@pytest.mark.parametrize("seed", range(4))
def test_replaying_the_whole_stream_changes_no_window(seed: int) -> None:
    stream = _random_stream(seed, n=120)
    windows: dict[str, CardWindow] = {}
    for tx, _ in stream:
        entry = WindowEntry(tx.ts.timestamp(), tx.amount, tx.country, tx.tx_id)
        windows[tx.card_id], _ = update_window(windows.get(tx.card_id, CardWindow()), entry)
    snapshot = {card: w.to_json() for card, w in windows.items()}
    for tx, _ in stream:
        entry = WindowEntry(tx.ts.timestamp(), tx.amount, tx.country, tx.tx_id)
        windows[tx.card_id], _ = update_window(windows[tx.card_id], entry)
    assert {card: w.to_json() for card, w in windows.items()} == snapshot


def test_online_store_window_includes_a_late_event_for_the_next_serving(tmp_path: Path) -> None:
    """Serving the next in-order tx from the stored row must see a late event already stored.

    The feature flow writes each row with the transaction's own event time; the store keeps
    the newest, so a late event's row (whose window holds the late entry) is dropped and the
    next transaction is served without it while its training row counts it.
    """
    store = SqliteOnlineStore(tmp_path / "online.db")
    stream = [_tx("t1", "c", T0, 10.0, "pos", "DE"), _tx("t2", "c", T0 + 1800, 20.0, "pos", "DE"),
              _tx("late", "c", T0 + 600, 30.0, "pos", "DE"),
              _tx("t4", "c", T0 + 2400, 40.0, "pos", "DE")]
    window = None
    for offset, tx in enumerate(stream):
        served = dict(zip(FEATURE_COLUMNS, feature_vector(tx, store.get_many(["c"]).get("c")),
                          strict=True))
        record = KafkaRecord("transactions", 0, offset, b"c", tx.to_json(), 0)
        window, row = card_features(window, Decoded(record, tx))
        store.upsert([_online_row(row)])
        training = {k: row[k] for k in FEATURE_COLUMNS}
        assert served == training, f"{tx.tx_id}: served from the online store != training row"
    store.close()


def test_window_entries_stay_sorted_by_event_time() -> None:
    windows: dict[str, CardWindow] = {}
    for tx, _ in _random_stream(3):
        entry = WindowEntry(tx.ts.timestamp(), tx.amount, tx.country, tx.tx_id)
        windows[tx.card_id], _ = update_window(windows.get(tx.card_id, CardWindow()), entry)
    for window in windows.values():
        times = [e.ts for e in window.entries]
        assert times == sorted(times)
        assert times[-1] - times[0] < DAY_S
        assert len({e.tx_id for e in window.entries}) == len(times)


def test_hour_of_day_is_in_utc() -> None:
    tx = Transaction.model_validate({
        "tx_id": "t", "card_id": "c", "merchant_id": "m", "amount": 1.0, "currency": "EUR",
        "country": "DE", "channel": "atm", "ts": "2026-01-01T23:30:00-05:00",
    })
    vector = dict(zip(FEATURE_COLUMNS, feature_vector(tx, None), strict=True))
    assert vector["hour_of_day"] == 4.0
    assert vector["channel_code"] == 2.0
    assert tx.ts == datetime(2026, 1, 2, 4, 30, tzinfo=UTC)
