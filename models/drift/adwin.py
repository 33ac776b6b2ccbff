"""ADWIN (River): an adaptive window cut where two sub-windows' means differ."""

from __future__ import annotations

from typing import Any

from river import drift

from fti.models.drift.base import BaseDetector, Direction, Finding


class AdwinDetector(BaseDetector):
    """River's ADWIN: an adaptive window cut where two sub-windows' means differ.

    The window of a signal is the part ADWIN kept (the new regime); `value` is the change of
    its mean estimate. `params` go to `river.drift.ADWIN` (`delta`, `clock`, ...).
    """

    def __init__(self, name: str = "adwin", feature: str = "value", grace: int = 0,
                 direction: Direction = "both", **params: Any) -> None:
        super().__init__(name, feature, grace, direction)
        self.params = params
        self._adwin = drift.ADWIN(**params)

    def _test(self, x: float) -> Finding | None:
        before = self._adwin.estimation
        self._adwin.update(x)
        if not self._adwin.drift_detected:
            return None
        after = self._adwin.estimation
        return Finding("mean_change", after - before, None, int(self._adwin.width), before, after)

    def _reset_test(self) -> None:
        self._adwin = drift.ADWIN(**self.params)
