"""KSWIN (River): a KS test of the newest values against a sample of the older ones.

`FastKSWIN` is River's `KSWIN` with the exact p-value looked up in a table built once;
`KswinDetector` wraps it in the `Detector` contract.
"""

from __future__ import annotations

import itertools
import warnings
from functools import cache
from typing import Any

import numpy as np
from river import drift
from scipy import stats

from fti.models.drift.base import ID_HISTORY, BaseDetector, Direction, Finding
from fti.models.drift.two_sample import ks_statistic


@cache
def _equal_size_pvalues(n: int) -> tuple[float, ...]:
    """Exact two-sided KS p-values for two samples of size n, indexed by k where D = k/n."""
    a = np.zeros(n)
    with warnings.catch_warnings():  # scipy falls back to "asymp" for tiny p, as River does
        warnings.simplefilter("ignore", RuntimeWarning)
        return tuple(
            float(stats.ks_2samp(a, np.r_[np.zeros(n - k), np.ones(k)], method="exact").pvalue)
            for k in range(n + 1)
        )


class FastKSWIN(drift.KSWIN):
    """River's KSWIN, same decisions, with the exact KS p-value looked up instead of computed.

    River calls `scipy.stats.ks_2samp` on every update (~0.5 ms here); with two samples of
    `stat_size` the p-value depends only on D = k/stat_size, so a table built once suffices.
    """

    def update(self, x: float) -> None:
        """River's `KSWIN.update`, line for line, but for the table look-up."""
        if self.drift_detected:
            self._reset()
        self.n += 1
        self.window.append(x)
        if len(self.window) < self.window_size:
            self._drift_detected = False
            return
        old = self.window_size - self.stat_size
        sample = [self.window[r] for r in self._rng.sample(range(old), self.stat_size)]
        recent = list(itertools.islice(self.window, old, self.window_size))
        d = ks_statistic(np.asarray(sample), np.asarray(recent))
        self.p_value = _equal_size_pvalues(self.stat_size)[round(d * self.stat_size)]
        self._drift_detected = self.p_value <= self.alpha and d > 0.1
        if self._drift_detected:
            self.window = type(self.window)(recent, maxlen=self.window_size)


class KswinDetector(BaseDetector):
    """River's KSWIN: KS test of the newest `stat_size` values against a sample of the older.

    The window is KSWIN's full window; `params` go to `KSWIN` (`alpha`, `window_size`,
    `stat_size`, `seed` — 0 unless given, so runs repeat).
    """

    def __init__(self, name: str = "kswin", feature: str = "value", grace: int = 0,
                 direction: Direction = "both", **params: Any) -> None:
        self.params = {"seed": 0, **params}
        self._ks = FastKSWIN(**self.params)
        super().__init__(name, feature, grace, direction, max(ID_HISTORY, self._ks.window_size))

    def _test(self, x: float) -> Finding | None:
        self._ks.update(x)
        if not self._ks.drift_detected:
            return None
        size, recent = self._ks.window_size, self._ks.stat_size
        values = self._ring.last(size)
        return Finding("ks_pvalue", float(self._ks.p_value), self._ks.alpha, size,
                       float(values[:-recent].mean()), float(values[-recent:].mean()))

    def _reset_test(self) -> None:
        self._ks = FastKSWIN(**self.params)
