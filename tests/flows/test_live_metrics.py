"""Live performance metrics: the sliding window against hand counts, eviction, per version,
and the monitor's join that feeds it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fti.events import Prediction
from fti.flows.live_metrics import LiveMetrics, LiveMetricsBook
from fti.flows.monitor import (
    LabelledPrediction,
    join_labelled,
    join_prediction_label,
    update_live_metrics,
)
from fti.models.drift import ErrorObserved
from fti.settings import Settings

# (predicted, actual): tp=3, fp=2, fn=1, tn=4
PAIRS = [(1, 1), (1, 1), (1, 1), (1, 0), (1, 0), (0, 1), (0, 0), (0, 0), (0, 0), (0, 0)]


def prediction(tx_id: str, label: int, version: int = 1) -> Prediction:
    return Prediction(id=tx_id, score=float(label), label=label, model="fraud-xgb",
                      version=version, latency_ms=1.0, ts=datetime.now(UTC))


def test_rates_match_hand_counts() -> None:
    window = LiveMetrics(size=100)
    for predicted, actual in PAIRS:
        window.update(predicted, actual)
    assert (window.tp, window.fp, window.fn, window.tn) == (3, 2, 1, 4)
    assert window.accuracy == pytest.approx(7 / 10)
    assert window.precision == pytest.approx(3 / 5)
    assert window.recall == pytest.approx(3 / 4)
    assert window.labelled_total == window.window_count == 10


def test_undefined_rates_are_none() -> None:
    window = LiveMetrics(size=5)
    assert (window.accuracy, window.precision, window.recall) == (None, None, None)
    window.update(0, 0)
    assert window.accuracy == 1.0 and window.precision is None and window.recall is None
    with pytest.raises(ValueError, match="size >= 1"):
        LiveMetrics(size=0)


def test_window_evicts_the_oldest_pairs() -> None:
    window = LiveMetrics(size=4)
    for predicted, actual in PAIRS:
        window.update(predicted, actual)
    # the last four pairs are all true negatives
    assert (window.tp, window.fp, window.fn, window.tn) == (0, 0, 0, 4)
    assert window.accuracy == 1.0 and window.precision is None and window.recall is None
    assert window.window_count == 4 and window.labelled_total == 10
    window.update(1, 0)
    assert (window.fp, window.tn, window.window_count) == (1, 3, 4)
    assert window.precision == 0.0 and window.accuracy == pytest.approx(3 / 4)


def test_versions_are_kept_apart_and_bounded() -> None:
    book = LiveMetricsBook("fraud-xgb", size=10, versions_kept=2)
    for predicted, actual in PAIRS:
        book.update(1, predicted, actual)
    for _ in range(3):
        book.update(2, 1, 0)
    assert book.windows[1].accuracy == pytest.approx(0.7)
    assert book.windows[2].accuracy == 0.0 and book.windows[2].labelled_total == 3
    book.update(3, 1, 1)
    assert list(book.windows) == [2, 3]  # the oldest version's window is dropped


def test_join_emits_once_both_sides_arrived_in_either_order() -> None:
    scored = prediction("t1", 1)
    state, out = join_labelled(None, scored)
    assert out == []
    state, out = join_labelled(state, False)
    assert state is None and out == [LabelledPrediction(scored, 0)]
    assert out[0].error() == ErrorObserved("t1", 1, 1)
    state, out = join_prediction_label(None, True)
    state, out = join_prediction_label(state, prediction("t2", 1, version=3))
    assert state is None and out == [ErrorObserved("t2", 3, 0)]


def test_live_step_keeps_one_book_per_model_with_a_window_per_version() -> None:
    step = update_live_metrics(Settings())
    book = None
    for i, (predicted, actual) in enumerate(PAIRS):
        book, window = step(book, LabelledPrediction(prediction(f"a{i}", predicted), actual))
    book, window2 = step(book, LabelledPrediction(prediction("b", 1, version=2), 1))
    assert book is not None and set(book.windows) == {1, 2}
    assert window.recall == pytest.approx(0.75) and window2.recall == 1.0
