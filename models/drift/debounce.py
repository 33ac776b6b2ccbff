"""Confirmation before a drift signal counts: repeated signals, or a shift that persists."""

from __future__ import annotations

from dataclasses import replace

from fti.models.drift.base import Detector, DetectorSignal


class Debounced:
    """A detector whose signals count only once confirmed (the `Detector` contract).

    The first signal opens a candidate. It is confirmed by `debounce` signals in the same
    direction, each within `within` values of the previous (one the other way drops the
    candidate: a spike up then down is no shift), or — with `persist` > 0 — when the mean of
    the last half of the next `persist` values is still past the midpoint between the
    signal's means before and after (always, when the signal has no means). Otherwise it is
    dropped and counted in `suppressed`. The confirmed signal keeps the first one's window.

    >>> from fti.models.drift.detectors import DetectorConfig, build_detector
    >>> held = Debounced(build_detector(DetectorConfig(kind="adwin"), "amount"), persist=100)
    >>> spike = [0.0] * 1000 + [1.0] * 30 + [0.0] * 300
    >>> [s for s in map(held.update, spike) if s], held.suppressed
    ([], 1)
    >>> shift = [1.0] * 300
    >>> [s.confirmed_by for s in map(held.update, shift) if s]
    ['persistence']
    """

    def __init__(self, inner: Detector, debounce: int = 1, persist: int = 0,
                 within: int = 1000) -> None:
        if debounce < 1 or persist < 0 or within < 1:
            raise ValueError(f"need debounce >= 1, persist >= 0, within >= 1 ({inner.name})")
        self.inner, self.debounce, self.persist, self.within = inner, debounce, persist, within
        self.name, self.feature = inner.name, inner.feature
        self.uses_reference = inner.uses_reference
        self.suppressed = 0
        self._candidate: DetectorSignal | None = None
        self._count = self._since = self._last = 0
        self._sum = 0.0

    def update(self, x: float, event_id: str | None = None) -> DetectorSignal | None:
        """Feed the inner detector; return a signal once confirmed."""
        signal = self.inner.update(x, event_id)
        if self._candidate is not None:
            self._since += 1
            if self._since > self.persist // 2:
                self._sum += float(x)
            if signal is not None and not _same_way(signal, self._candidate):
                return self._close(None)  # there and back again: a spike, not a shift
            if signal is not None:
                self._count, self._last = self._count + 1, self._since
        elif signal is not None:
            self._candidate, self._count, self._since, self._last, self._sum = signal, 1, 0, 0, 0.0
        return self._settle() if self._candidate is not None else None

    def reset(self) -> None:
        """Forget the inner detector's state and any open candidate."""
        self.inner.reset()
        self._candidate = None

    def _settle(self) -> DetectorSignal | None:
        if self._count >= self.debounce and (self.debounce > 1 or not self.persist):
            return self._close("signals")
        if self.persist and self._since >= self.persist:
            return self._close("persistence") if self._held() else self._close(None)
        if not self.persist and self._since - self._last >= self.within:
            return self._close(None)
        return None

    def _held(self) -> bool:
        c = self._candidate
        assert c is not None
        if c.mean_before is None or c.mean_after is None or c.mean_before == c.mean_after:
            return True
        mean = self._sum / (self._since - self.persist // 2)
        middle = (c.mean_before + c.mean_after) / 2
        return mean > middle if c.mean_after > c.mean_before else mean < middle

    def _close(self, confirmed_by: str | None) -> DetectorSignal | None:
        candidate, self._candidate = self._candidate, None
        if confirmed_by is None or candidate is None:
            self.suppressed += 1
            return None
        return replace(candidate, confirmations=self._count, confirmed_by=confirmed_by)


def _same_way(a: DetectorSignal, b: DetectorSignal) -> bool:
    if None in (a.mean_before, a.mean_after, b.mean_before, b.mean_after):
        return True
    return (a.mean_after > a.mean_before) == (b.mean_after > b.mean_before)  # type: ignore
