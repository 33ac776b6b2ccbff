"""Drift detectors behind one small contract: `update(x, tx_id) -> DetectorSignal | None`.

Streaming detectors wrap River (`ADWIN`, `PageHinkley`, `KSWIN`); `ReferenceWindowTest` compares
a sliding window of live values with a training reference (PSI and the two-sample KS test).
Every signal carries its evidence: detector, feature, statistic and value, threshold, window
size and the tx ids where the window starts and ends (`fti.models.drift.retrain_policy.Debounced`
holds a signal back until confirmed). Pure logic, no I/O; every class pickles (Bytewax
snapshots it).

>>> detector = build_detector(DetectorConfig(kind="adwin"), "amount")
>>> [detector.update(0.0, f"tx{i}") for i in range(3)]
[None, None, None]
>>> signals = [detector.update(float(i >= 500), f"tx{i}") for i in range(3, 1000)]
>>> first = next(s for s in signals if s is not None)
>>> first.detector, first.statistic, first.mean_after > first.mean_before
('amount_adwin', 'mean_change', True)
"""

from __future__ import annotations

import abc
import inspect
import itertools
import warnings
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from river import drift
from scipy import stats

Direction = Literal["both", "increase", "decrease"]
Kind = Literal["adwin", "page_hinkley", "kswin", "psi", "ks"]
TX_HISTORY = 1024  # recent tx ids a streaming detector keeps to name where its window starts


def _num(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(f"{value:.6g}")


# --- statistics of a live sample against a reference ---------------------------------------


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges at the reference's quantiles, duplicates dropped (discrete data).

    Edges are reference values (inverted CDF), so a bin is (edges[i-1], edges[i]].

    >>> quantile_edges(np.arange(1.0, 11.0), 2).tolist()
    [5.0]
    >>> quantile_edges(np.array([0.0] * 9 + [1.0]), 10).tolist()  # binary: two bins
    [0.0]
    """
    qs = np.linspace(0, 1, bins + 1)[1:-1]
    return np.unique(np.quantile(reference, qs, method="inverted_cdf"))


def bin_proportions(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of `values` per bin; bin i holds (edges[i-1], edges[i]], the outer bins are open.

    >>> bin_proportions(np.array([1.0, 2, 3, 8, 9, 10]), np.array([5.0])).tolist()
    [0.5, 0.5]
    """
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=edges.size + 1)
    return counts / max(len(values), 1)


def psi(expected: np.ndarray, actual: np.ndarray, eps: float = 1e-4) -> float:
    """Population stability index sum((a - e) * ln(a / e)), proportions floored at `eps`.

    >>> round(psi(np.array([0.5, 0.5]), np.array([0.3, 0.7])), 4)
    0.1695
    """
    e, a = np.maximum(expected, eps), np.maximum(actual, eps)
    return float(np.sum((a - e) * np.log(a / e)))


def population_stability_index(reference: np.ndarray, live: np.ndarray, bins: int = 10,
                               eps: float = 1e-4) -> float:
    """PSI of `live` against `reference`, over `bins` quantile bins of the reference.

    >>> live = np.array([1.0, 2, 3, 8, 9, 10, 10, 10, 10, 10])  # 30 % <= 5, reference 50 %
    >>> round(population_stability_index(np.arange(1.0, 11.0), live, bins=2), 4)
    0.1695
    """
    edges = quantile_edges(np.asarray(reference, float), bins)
    return psi(bin_proportions(np.asarray(reference, float), edges),
               bin_proportions(np.asarray(live, float), edges), eps)


def ks_statistic(a: np.ndarray, b: np.ndarray, a_sorted: bool = False) -> float:
    """Two-sample KS statistic D = max |F_a - F_b| (the same as `scipy.stats.ks_2samp`).

    >>> ks_statistic(np.array([1.0, 2, 3, 4]), np.array([3.0, 4, 5, 6]))
    0.5
    """
    a = a if a_sorted else np.sort(a)
    b = np.sort(b)
    both = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, both, side="right") / a.size
    cdf_b = np.searchsorted(b, both, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def ks_pvalue(d: float, n1: int, n2: int) -> float:
    """Asymptotic two-sided p-value of D for samples of n1 and n2 (`ks_2samp` "asymp").

    >>> round(ks_pvalue(0.5, 400, 400), 6)
    0.0
    """
    m, n = max(n1, n2), min(n1, n2)
    return float(np.clip(stats.kstwo.sf(d, round(m * n / (m + n))), 0.0, 1.0))


@dataclass(frozen=True)
class DetectorSignal:
    """A drift signal and its evidence; `evidence()` is the JSON-ready form."""

    detector: str
    feature: str
    statistic: str
    value: float
    threshold: float | None
    window_size: int
    window_start_tx: str | None
    window_end_tx: str | None
    mean_before: float | None = None
    mean_after: float | None = None
    confirmations: int = 1
    confirmed_by: str | None = None

    def evidence(self) -> dict[str, Any]:
        """Every field, floats rounded to 6 significant digits (JSON-safe: no NaN)."""
        return {
            "detector": self.detector, "feature": self.feature, "statistic": self.statistic,
            "value": _num(self.value), "threshold": _num(self.threshold),
            "window_size": self.window_size, "window_start_tx": self.window_start_tx,
            "window_end_tx": self.window_end_tx, "mean_before": _num(self.mean_before),
            "mean_after": _num(self.mean_after), "confirmations": self.confirmations,
            "confirmed_by": self.confirmed_by,
        }


@runtime_checkable
class Detector(Protocol):
    """The contract every detector keeps: one value in, a signal or None out."""

    name: str
    feature: str
    uses_reference: bool

    def update(self, x: float, tx_id: str | None = None) -> DetectorSignal | None:
        """Take one value (and its tx id); return a signal when drift is detected."""
        ...

    def reset(self) -> None:
        """Forget everything seen so far."""
        ...


class _Ring:
    """The newest `capacity` values and tx ids; cheap to deep-copy."""

    def __init__(self, capacity: int) -> None:
        self.values = np.zeros(capacity)
        self.tx: list[str | None] = [None] * capacity
        self.pos = self.count = 0

    def push(self, value: float, tx_id: str | None) -> None:
        self.values[self.pos], self.tx[self.pos] = value, tx_id
        self.pos = (self.pos + 1) % self.values.size
        self.count = min(self.count + 1, self.values.size)

    def last(self, k: int) -> np.ndarray:
        """The newest min(k, count) values, oldest first."""
        k = min(k, self.count)
        if k <= self.pos:
            return self.values[self.pos - k:self.pos].copy()
        return np.concatenate([self.values[self.values.size - (k - self.pos):],
                               self.values[:self.pos]])

    def tx_back(self, k: int) -> str | None:
        """The tx id `k` observations back (1 = newest), None when no longer kept."""
        return self.tx[(self.pos - k) % self.values.size] if 0 < k <= self.count else None

    def clear(self) -> None:
        self.pos = self.count = 0

    def __deepcopy__(self, memo: dict[int, Any]) -> _Ring:
        clone = _Ring.__new__(_Ring)
        clone.values, clone.tx = self.values.copy(), list(self.tx)  # tx ids are immutable
        clone.pos, clone.count = self.pos, self.count
        return clone


@dataclass
class _Finding:
    """What a test found, before grace and direction decide whether it is a signal."""

    statistic: str
    value: float
    threshold: float | None
    window_size: int
    mean_before: float | None
    mean_after: float | None
    restart: bool = False  # start a fresh window (window tests)
    directed: bool = False  # the test itself only looks in `direction`


class BaseDetector(abc.ABC):
    """Shared mechanics: grace, direction and evidence; subclasses implement `_test`."""

    uses_reference = False

    def __init__(self, name: str, feature: str, grace: int = 0, direction: Direction = "both",
                 history: int = TX_HISTORY) -> None:
        if direction not in ("both", "increase", "decrease"):
            raise ValueError(f"direction must be both, increase or decrease, got {direction!r}")
        if grace < 0:
            raise ValueError(f"grace must be >= 0, got {grace}")
        self.name, self.feature, self.grace, self.direction = name, feature, grace, direction
        self.seen = 0
        self._ring = _Ring(history)

    def update(self, x: float, tx_id: str | None = None) -> DetectorSignal | None:
        """Take one value; a signal only after `grace` values and in `direction`."""
        x = float(x)
        self.seen += 1
        self._ring.push(x, tx_id)
        found = self._test(x)
        if found is None:
            return None
        signal = None
        if self.seen > self.grace and (found.directed or self._agrees(found)):
            signal = DetectorSignal(
                self.name, self.feature, found.statistic, found.value, found.threshold,
                found.window_size, self._ring.tx_back(found.window_size), tx_id,
                found.mean_before, found.mean_after,
            )
        if found.restart:
            self._ring.clear()
        return signal

    def reset(self) -> None:
        """Forget everything seen so far (grace starts again)."""
        self.seen = 0
        self._ring.clear()
        self._reset_test()

    def _agrees(self, found: _Finding) -> bool:
        before, after = found.mean_before, found.mean_after
        if self.direction == "both" or before is None or after is None:
            return True
        return after > before if self.direction == "increase" else after < before

    @abc.abstractmethod
    def _test(self, x: float) -> _Finding | None:
        """Feed one value to the underlying test; a finding when it signals."""

    @abc.abstractmethod
    def _reset_test(self) -> None:
        """Start the underlying test afresh."""


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

    def _test(self, x: float) -> _Finding | None:
        before = self._adwin.estimation
        self._adwin.update(x)
        if not self._adwin.drift_detected:
            return None
        after = self._adwin.estimation
        return _Finding("mean_change", after - before, None, int(self._adwin.width), before, after)

    def _reset_test(self) -> None:
        self._adwin = drift.ADWIN(**self.params)


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

    def _test(self, x: float) -> _Finding | None:
        if self._ph.drift_detected:
            self._n, self._sum = 0, 0.0  # River restarts the test at this update
        self._ph.update(x)
        self._n, self._sum = self._n + 1, self._sum + x
        if not self._ph.drift_detected:
            return None
        k = min(self._ph.min_instances, self._n, self._ring.count)
        recent = self._ring.last(k)
        before = (self._sum - recent.sum()) / (self._n - k) if self._n > k else None
        return _Finding("page_hinkley", self._statistic(), self._ph.threshold, self._n, before,
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
        super().__init__(name, feature, grace, direction, max(TX_HISTORY, self._ks.window_size))

    def _test(self, x: float) -> _Finding | None:
        self._ks.update(x)
        if not self._ks.drift_detected:
            return None
        size, recent = self._ks.window_size, self._ks.stat_size
        values = self._ring.last(size)
        return _Finding("ks_pvalue", float(self._ks.p_value), self._ks.alpha, size,
                        float(values[:-recent].mean()), float(values[-recent:].mean()))

    def _reset_test(self) -> None:
        self._ks = FastKSWIN(**self.params)


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
    >>> signals[-1].statistic, signals[-1].window_start_tx, signals[-1].window_end_tx
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

    def _test(self, x: float) -> _Finding | None:
        self._n += 1
        if self._n < self.window or (self._n - self.window) % self.stride:
            return None
        live = self._ring.last(self.window)
        found = self._psi(live) or self._ks(live)
        if found is not None:
            self._n = 0
        return found

    def _psi(self, live: np.ndarray) -> _Finding | None:
        if self.psi_threshold is None:
            return None
        value = psi(self._expected, bin_proportions(live, self._edges), self.eps)
        return self._finding("psi", value, self.psi_threshold, live) \
            if value >= self.psi_threshold else None

    def _ks(self, live: np.ndarray) -> _Finding | None:
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
                 live: np.ndarray) -> _Finding:
        return _Finding(statistic, value, threshold, self.window, self._mean,
                        float(live.mean()), restart=True)

    def _reset_test(self) -> None:
        self._n = 0


# --- configuration ---------------------------------------------------------------------------

_RIVER = {"adwin": (AdwinDetector, drift.ADWIN), "page_hinkley": (PageHinkleyDetector,
          drift.PageHinkley), "kswin": (KswinDetector, drift.KSWIN)}
_WINDOW_PARAMS = {"psi": {"window", "threshold", "bins", "stride", "eps"},
                  "ks": {"window", "threshold", "mode", "stride"}}
_CHECK_REFERENCE = np.linspace(0.0, 1.0, 64)


class DetectorConfig(BaseModel):
    """One detector of one stream: `kind`, its `params`, `grace` values before it may signal.

    `params` go to River's class for adwin / page_hinkley / kswin; psi takes `window`,
    `threshold` (0.2), `bins`, `stride`, `eps`; ks takes `window`, `threshold` (0.001),
    `mode` ("p_value" or "statistic"), `stride`. psi and ks need a reference distribution.
    `direction` None means the stream's own (increase for the error rate, else both).

    >>> DetectorConfig(kind="psi", params={"threshold": 0.25}).detector_name("amount")
    'amount_psi'
    >>> try:
    ...     DetectorConfig(kind="adwin", params={"alpha": 1})
    ... except ValueError as ex:
    ...     print(ex.errors()[0]["msg"])
    Value error, adwin does not take params ['alpha']; it takes ['clock', 'delta', \
'grace_period', 'max_buckets', 'min_window_length']
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    params: dict[str, Any] = Field(default_factory=dict)
    grace: int = Field(0, ge=0)
    direction: Direction | None = None
    name: str | None = None

    @property
    def needs_reference(self) -> bool:
        """True for the window tests against a reference (psi, ks)."""
        return self.kind in _WINDOW_PARAMS

    def detector_name(self, feature: str) -> str:
        """`name`, or `{feature}_{kind}`: the metric label and the evidence's `detector`."""
        return self.name or f"{feature}_{self.kind}"

    @model_validator(mode="after")
    def _params_are_known(self) -> DetectorConfig:
        known = _WINDOW_PARAMS.get(self.kind) or set(
            inspect.signature(_RIVER[self.kind][1]).parameters) - {"window"}
        unknown = sorted(set(self.params) - known)
        if unknown:
            raise ValueError(
                f"{self.kind} does not take params {unknown}; it takes {sorted(known)}")
        try:
            build_detector(self, "check", reference=_CHECK_REFERENCE)
        except (TypeError, ValueError) as ex:
            raise ValueError(f"invalid {self.kind} params {self.params}: {ex}") from ex
        return self


def build_detector(config: DetectorConfig, feature: str, reference: np.ndarray | None = None,
                   default_direction: Direction = "both") -> BaseDetector:
    """The detector `config` describes, for `feature`; psi and ks need `reference`.

    >>> build_detector(DetectorConfig(kind="kswin"), "hour_of_day").name
    'hour_of_day_kswin'
    """
    name, direction = config.detector_name(feature), config.direction or default_direction
    common: dict[str, Any] = {"name": name, "feature": feature, "grace": config.grace,
                              "direction": direction}
    if config.kind in _RIVER:
        return _RIVER[config.kind][0](**common, **config.params)
    if reference is None:
        raise ValueError(f"{name}: a {config.kind} test needs a reference distribution")
    p = config.params
    window, stride = int(p.get("window", 500)), int(p.get("stride", 10))
    if config.kind == "psi":
        return ReferenceWindowTest(reference, window, psi_threshold=p.get("threshold", 0.2),
                                   bins=int(p.get("bins", 10)), stride=stride,
                                   eps=p.get("eps", 1e-4), **common)
    return ReferenceWindowTest(reference, window, ks_threshold=p.get("threshold", 0.001),
                               ks_mode=p.get("mode", "p_value"), stride=stride, **common)
