"""Window tests against a training reference: PSI and the two-sample KS test."""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import stats

from fti.models.drift.base import BaseDetector, Direction, Finding
from fti.models.drift.two_sample import (
    bin_proportions,
    ks_pvalue,
    ks_statistic,
    psi,
    quantile_edges,
)


class ReferenceWindowTest(BaseDetector):
    """PSI and/or two-sample KS of the last `window` live values against a reference.

    Bins are the reference's quantiles (fixed at construction); empty bins count as `eps`.
    KS is tested as a p-value (`ks_mode="p_value"`, Smirnov's asymptotic distribution as in
    `ks_2samp(method="asymp")`: signal when p <= `ks_threshold`) or as the statistic D
    (signal when D >= `ks_threshold`). Tests run every `stride` values once the window is
    full; after a finding the window starts afresh.

    >>> rng = np.random.default_rng(0)
    >>> test = ReferenceWindowTest(rng.normal(0, 1, 2000), 200, psi_threshold=0.2)
    >>> signals = [test.update(x, f"tx{i}") for i, x in enumerate(rng.normal(1, 1, 200))]
    >>> signals[-1].statistic, signals[-1].window_start_event, signals[-1].window_end_event
    ('psi', 'tx0', 'tx199')
    """

    uses_reference = True

    def __init__(self, reference: np.ndarray, window: int = 500,
                 psi_threshold: float | None = None, ks_threshold: float | None = None,
                 ks_mode: Literal["p_value", "statistic"] = "p_value", bins: int = 10,
                 stride: int = 10, eps: float = 1e-4, *, name: str = "reference",
                 feature: str = "value", grace: int = 0, direction: Direction = "both") -> None:
        ref = np.asarray(reference, dtype=float).ravel()
        if ref.size < 2 or not np.isfinite(ref).all():
            raise ValueError(f"reference needs >= 2 finite values, got {ref.size} ({name})")
        if window < 2 or stride < 1 or bins < 2 or eps <= 0:
            raise ValueError(f"need window >= 2, stride >= 1, bins >= 2, eps > 0 ({name})")
        if psi_threshold is None and ks_threshold is None:
            raise ValueError(f"set psi_threshold and/or ks_threshold ({name})")
        if ks_mode not in ("p_value", "statistic"):
            raise ValueError(f"ks_mode must be p_value or statistic, got {ks_mode!r} ({name})")
        super().__init__(name, feature, grace, direction, history=window)
        self.window, self.stride, self.eps = window, stride, eps
        self.psi_threshold, self.ks_threshold, self.ks_mode = psi_threshold, ks_threshold, ks_mode
        self._sorted = np.sort(ref)
        self._edges = quantile_edges(ref, bins)
        self._expected = bin_proportions(ref, self._edges)
        self._mean = float(ref.mean())
        self._d_crit = np.inf
        if ks_threshold is not None and ks_mode == "p_value":
            en = round(window * ref.size / (window + ref.size))
            self._d_crit = float(stats.kstwo.isf(ks_threshold, en))
        self._n = 0

    def _test(self, x: float) -> Finding | None:
        self._n += 1
        if self._n < self.window or (self._n - self.window) % self.stride:
            return None
        live = self._ring.last(self.window)
        found = self._psi(live) or self._ks(live)
        if found is not None:
            self._n = 0
        return found

    def _psi(self, live: np.ndarray) -> Finding | None:
        if self.psi_threshold is None:
            return None
        value = psi(self._expected, bin_proportions(live, self._edges), self.eps)
        return self._finding("psi", value, self.psi_threshold, live) \
            if value >= self.psi_threshold else None

    def _ks(self, live: np.ndarray) -> Finding | None:
        if self.ks_threshold is None:
            return None
        d = ks_statistic(self._sorted, live, a_sorted=True)
        if self.ks_mode == "statistic":
            return self._finding("ks_statistic", d, self.ks_threshold, live) \
                if d >= self.ks_threshold else None
        if d < self._d_crit:
            return None
        return self._finding("ks_pvalue", ks_pvalue(d, self._sorted.size, live.size),
                             self.ks_threshold, live)

    def _finding(self, statistic: str, value: float, threshold: float,
                 live: np.ndarray) -> Finding:
        return Finding(statistic, value, threshold, self.window, self._mean,
                       float(live.mean()), restart=True)

    def _reset_test(self) -> None:
        self._n = 0
