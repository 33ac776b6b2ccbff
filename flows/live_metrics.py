"""Live performance of served models once labels arrive: sliding-window accuracy, precision,
recall and the labelled-prediction count, per model version.

`LiveMetrics` is the pure window; `LiveMetricsBook` keeps one window per version of a model
(the monitor flow keeps one book per model); `export` sets the Prometheus series once
`fti.metrics` defines them (`fti_live_accuracy{model, version}`, `fti_live_precision`,
`fti_live_recall`, `fti_labelled_predictions_total{model, version}`), and is a no-op before.
Fraud (label 1) is the positive class.

>>> window = LiveMetrics(size=3)
>>> for predicted, actual in [(1, 1), (1, 0), (0, 1), (0, 0)]:
...     window.update(predicted, actual)
>>> window.accuracy, window.precision, window.recall, window.labelled_total
(0.3333333333333333, 0.0, 0.0, 4)
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from fti import metrics

DEFAULT_WINDOW = 1000
#: Versions a book keeps windows for; older ones are dropped (their series stay as they were).
DEFAULT_VERSIONS_KEPT = 5


@dataclass
class LiveMetrics:
    """Confusion counts over the last `size` joined (predicted, actual) pairs.

    Counts are updated incrementally: adding a pair and evicting the oldest are O(1).
    """

    size: int = DEFAULT_WINDOW
    labelled_total: int = 0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    _pairs: deque[tuple[int, int]] = field(default_factory=deque, repr=False)

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"a live-metrics window needs size >= 1, got {self.size}")

    def update(self, predicted: int, actual: int) -> None:
        """Add one labelled prediction; evict the oldest once the window is full."""
        pair = (int(bool(predicted)), int(bool(actual)))
        self._pairs.append(pair)
        self._count(pair, +1)
        if len(self._pairs) > self.size:
            self._count(self._pairs.popleft(), -1)
        self.labelled_total += 1

    def _count(self, pair: tuple[int, int], step: int) -> None:
        name = {(1, 1): "tp", (1, 0): "fp", (0, 1): "fn", (0, 0): "tn"}[pair]
        setattr(self, name, getattr(self, name) + step)

    @property
    def window_count(self) -> int:
        """Pairs currently in the window (at most `size`)."""
        return len(self._pairs)

    @property
    def accuracy(self) -> float | None:
        """Share of correct labels in the window (None while it is empty)."""
        n = self.window_count
        return (self.tp + self.tn) / n if n else None

    @property
    def precision(self) -> float | None:
        """tp / (tp + fp) in the window (None without any predicted positive)."""
        predicted = self.tp + self.fp
        return self.tp / predicted if predicted else None

    @property
    def recall(self) -> float | None:
        """tp / (tp + fn) in the window (None without any actual positive)."""
        actual = self.tp + self.fn
        return self.tp / actual if actual else None


@dataclass
class LiveMetricsBook:
    """One `LiveMetrics` window per version of one model, the newest `versions_kept` only.

    >>> book = LiveMetricsBook("fraud-xgb", size=10)
    >>> book.update(1, predicted=1, actual=1).accuracy, book.update(2, 0, 1).accuracy
    (1.0, 0.0)
    """

    model: str
    size: int = DEFAULT_WINDOW
    versions_kept: int = DEFAULT_VERSIONS_KEPT
    windows: OrderedDict[int, LiveMetrics] = field(default_factory=OrderedDict)

    def update(self, version: int, predicted: int, actual: int) -> LiveMetrics:
        """Add one labelled prediction of `version`; return that version's window."""
        window = self.windows.get(version)
        if window is None:
            window = self.windows[version] = LiveMetrics(self.size)
            while len(self.windows) > self.versions_kept:
                self.windows.popitem(last=False)
        window.update(predicted, actual)
        return window


def _metric(name: str) -> Any | None:
    # The collectors belong in fti/metrics.py (the one catalogue); until they land there,
    # live metrics are computed but not exported.
    return getattr(metrics, name, None)


def export(model: str, version: int, window: LiveMetrics, new_labelled: int = 1) -> None:
    """Publish one version's window: gauges for the rates, `new_labelled` added to the count."""
    labels = (model, str(version))
    for name, value in (("LIVE_ACCURACY", window.accuracy),
                        ("LIVE_PRECISION", window.precision),
                        ("LIVE_RECALL", window.recall)):
        gauge = _metric(name)
        if gauge is not None and value is not None:
            gauge.labels(*labels).set(value)
    counter = _metric("LABELLED_PREDICTIONS")
    if counter is not None:
        counter.labels(*labels).inc(new_labelled)


def count_shadow(model: str, version: int, scored: int, agreed: int) -> None:
    """Count shadow predictions of a challenger version and how many agreed with the champion
    (`fti_shadow_predictions_total`, `fti_shadow_agreements_total`, both `{model, version}`)."""
    for name, amount in (("SHADOW_PREDICTIONS", scored), ("SHADOW_AGREEMENTS", agreed)):
        counter = _metric(name)
        if counter is not None:
            counter.labels(model, str(version)).inc(amount)
