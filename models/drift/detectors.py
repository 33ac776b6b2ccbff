"""The detector registry: `DetectorConfig` describes a detector, `build_detector` builds it.

Every kind keeps the contract of `fti.models.drift.base` (`update(x, event_id) ->
DetectorSignal | None`). Streaming detectors wrap River: adwin (`fti.models.drift.adwin`),
page_hinkley (`fti.models.drift.page_hinkley`), kswin (`fti.models.drift.kswin`); psi and ks
compare a sliding window of live values with a training reference
(`fti.models.drift.reference_window`). `fti.models.drift.debounce.Debounced` holds a signal
back until confirmed.

>>> detector = build_detector(DetectorConfig(kind="adwin"), "amount")
>>> [detector.update(0.0, f"tx{i}") for i in range(3)]
[None, None, None]
>>> signals = [detector.update(float(i >= 500), f"tx{i}") for i in range(3, 1000)]
>>> first = next(s for s in signals if s is not None)
>>> first.detector, first.statistic, first.mean_after > first.mean_before
('amount_adwin', 'mean_change', True)
"""

from __future__ import annotations

import inspect
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from river import drift

from fti.models.drift.adwin import AdwinDetector
from fti.models.drift.base import BaseDetector, Direction
from fti.models.drift.kswin import KswinDetector
from fti.models.drift.page_hinkley import PageHinkleyDetector
from fti.models.drift.reference_window import ReferenceWindowTest

Kind = Literal["adwin", "page_hinkley", "kswin", "psi", "ks"]

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
