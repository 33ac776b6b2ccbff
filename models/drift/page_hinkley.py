"""Page-Hinkley (River): cumulative deviations from the running mean beyond a threshold."""

from __future__ import annotations

from typing import Any

import numpy as np
from river import drift

from fti.models.drift.base import BaseDetector, Direction, Finding


class PageHinkleyDetector(BaseDetector):
    """River's Page-Hinkley: cumulative deviations from the running mean beyond `threshold`.

    `direction` picks River's mode (increase = "up"). The window is everything since the
    detector last restarted; `mean_after` is the mean of its last `min_instances` values.
    """

    _MODES = {"both": "both", "increase": "up", "decrease": "down"}

    def __init__(self, name: str = "page_hinkley", feature: str = "value", grace: int = 0,
                 direction: Direction = "both", **params: Any) -> None:
        super().__init__(name, feature, grace, direction)
        self.params = {"mode": self._MODES.get(direction, "both"), **params}
        self._ph = drift.PageHinkley(**self.params)
        self._n, self._sum = 0, 0.0

    def _test(self, x: float) -> Finding | None:
        if self._ph.drift_detected:
            self._n, self._sum = 0, 0.0  # River restarts the test at this update
        self._ph.update(x)
        self._n, self._sum = self._n + 1, self._sum + x
        if not self._ph.drift_detected:
            return None
        k = min(self._ph.min_instances, self._n, self._ring.count)
        recent = self._ring.last(k)
        before = (self._sum - recent.sum()) / (self._n - k) if self._n > k else None
        return Finding("page_hinkley", self._statistic(), self._ph.threshold, self._n, before,
                       float(recent.mean()), directed=True)

    def _statistic(self) -> float:
        # River keeps the test's sums private; read them defensively (River >= 0.22).
        ph = self._ph
        up = getattr(ph, "_sum_increase", np.nan) - getattr(ph, "_min_increase", np.nan)
        down = getattr(ph, "_max_decrease", np.nan) - getattr(ph, "_sum_decrease", np.nan)
        return {"up": up, "down": down}.get(ph.mode, max(up, down))

    def _reset_test(self) -> None:
        self._ph = drift.PageHinkley(**self.params)
        self._n, self._sum = 0, 0.0
