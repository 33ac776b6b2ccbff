"""When to retrain: drift detectors per feature and on the error rate, label volume, a cooldown.

Pure logic, no I/O. Observations go in (`observe`), retrain requests come out. Rules:

- **bootstrap**: no champion yet and `bootstrap_labels` labels seen → `volume` request;
- **volume**: `volume_labels` new labels since the last request → `volume` request;
- **drift**: a detector of `MonitorConfig` signals — on the live error rate (increases only;
  ADWIN by default) or on an input feature (ADWIN on log1p(amount) by default; Page-Hinkley,
  KSWIN, and PSI / KS window tests against the champion's training data per feature). With
  `debounce` > 1 or `persist` > 0 a signal must be confirmed before it counts (`Debounced`).
  The request waits until `drift_min_labels` labels arrived after the detection, so the
  training job has examples of the new regime; its evidence names every detector that fired;
- nothing is requested within `cooldown_s` of the previous request.

>>> policy = RetrainPolicy("fraud-xgb", MonitorSettings(bootstrap_labels=2, cooldown_s=0))
>>> policy.observe(LabelSeen(), now=0.0)
[]
>>> [r.reason for r in policy.observe(LabelSeen(), now=1.0)]
['volume']
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fti.errors import ConfigError
from fti.events import RetrainRequest
from fti.models.drift.detectors import Detector, DetectorConfig, DetectorSignal, build_detector
from fti.settings import MonitorSettings

ERROR_RATE = "error_rate"  # the stream name of the live error rate (detectors, references)
LOG_SCALED = frozenset({"amount"})  # heavy-tailed features monitored as log1p(value)
MAX_DETECTIONS = 256  # recent detections kept in the state (the metric counts them all)
MAX_SIGNALS = 16  # signals listed in one request's evidence
_SIGNAL_KEYS = ("feature", "statistic", "value", "threshold", "window_size",
                "window_start_tx", "window_end_tx")


def monitored_value(feature: str, value: float) -> float:
    """The value the monitor tracks for a raw feature (references must use the same scale).

    >>> monitored_value("amount", math.e - 1), monitored_value("hour_of_day", 13.0)
    (1.0, 13.0)
    """
    return math.log1p(max(value, 0.0)) if feature in LOG_SCALED else float(value)


@dataclass(frozen=True)
class LabelSeen:
    """A new label arrived."""


@dataclass(frozen=True)
class ErrorObserved:
    """A prediction met its label: `error` is 1 when the predicted label was wrong."""

    tx_id: str
    version: int
    error: int


@dataclass(frozen=True)
class FeatureObserved:
    """One monitored value of `feature` (None: the config's `default_feature`)."""

    tx_id: str
    value: float
    feature: str | None = None


@dataclass(frozen=True, eq=False)
class ReferenceSet:
    """The champion's training distribution of `feature` (or `error_rate`), monitored scale."""

    feature: str
    values: Sequence[float] | np.ndarray


@dataclass(frozen=True)
class ChampionChanged:
    """The registry promoted (or rolled back to) `version`."""

    version: int


Observation = LabelSeen | ErrorObserved | FeatureObserved | ReferenceSet | ChampionChanged


def _adwin(delta: float, grace: int) -> DetectorConfig:
    return DetectorConfig(kind="adwin", params={"delta": delta}, grace=grace)


class MonitorConfig(BaseModel):
    """Everything the policy decides by; the defaults are `MonitorSettings()`'s behaviour.

    `feature_detectors` maps each monitored feature to its detectors; `debounce` signals
    (each within `debounce_within` values of the previous) or a shift that holds for
    `persist` values confirm a detection.

    >>> MonitorConfig().features, MonitorConfig().error_detectors[0].kind
    (('amount',), 'adwin')
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_labels: int = Field(1000, ge=1)
    volume_labels: int = Field(20000, ge=1)
    drift_min_labels: int = Field(600, ge=0)
    cooldown_s: float = Field(20.0, ge=0)
    error_detectors: tuple[DetectorConfig, ...] = (_adwin(0.002, 300),)
    feature_detectors: dict[str, tuple[DetectorConfig, ...]] = Field(
        default_factory=lambda: {"amount": (_adwin(0.0005, 300),)})
    default_feature: str = "amount"
    debounce: int = Field(1, ge=1)
    debounce_within: int = Field(1000, ge=1)
    persist: int = Field(0, ge=0)

    @property
    def features(self) -> tuple[str, ...]:
        """The monitored features, in configuration order."""
        return tuple(self.feature_detectors)

    @model_validator(mode="after")
    def _error_rate_only_increases(self) -> MonitorConfig:
        wrong = [c.detector_name(ERROR_RATE) for c in self.error_detectors
                 if c.direction not in (None, "increase")]
        if wrong:
            raise ValueError(f"error-rate detectors only count increases; drop direction: {wrong}")
        return self


def _detector_config(item: Any, grace: int) -> DetectorConfig:
    if isinstance(item, DetectorConfig):
        return item
    data = dict(item.model_dump() if isinstance(item, BaseModel) else item)
    if data.get("grace") is None:
        data["grace"] = grace  # grace_predictions, unless the detector sets its own
    return DetectorConfig.model_validate(data)


def monitor_config(settings: MonitorSettings) -> MonitorConfig:
    """The policy's configuration from `settings.monitor`; newer optional fields are honoured.

    Reads `error_detectors`, `drift_features`, `feature_detectors`, `debounce`,
    `debounce_within` and `persist` when the settings have them; without, today's ADWINs.
    A detector without its own `grace` gets `grace_predictions`.

    >>> cfg = monitor_config(MonitorSettings(drift_feature="hour_of_day"))
    >>> cfg.features, cfg.error_detectors[0].params, cfg.feature_detectors["hour_of_day"][0].grace
    (('hour_of_day',), {'delta': 0.002}, 300)
    """
    grace = settings.grace_predictions
    errors = getattr(settings, "error_detectors", None) or (_adwin(settings.error_delta, grace),)
    explicit = dict(getattr(settings, "feature_detectors", None) or {})
    names = [settings.drift_feature, *getattr(settings, "drift_features", ()), *explicit]
    default = (_adwin(settings.feature_delta, grace),)
    try:
        return MonitorConfig(
            bootstrap_labels=settings.bootstrap_labels, volume_labels=settings.volume_labels,
            drift_min_labels=settings.drift_min_labels, cooldown_s=settings.cooldown_s,
            error_detectors=tuple(_detector_config(c, grace) for c in errors),
            feature_detectors={
                name: tuple(_detector_config(c, grace) for c in explicit.get(name) or default)
                for name in dict.fromkeys(names)
            },
            default_feature=settings.drift_feature,
            debounce=getattr(settings, "debounce", 1),
            debounce_within=getattr(settings, "debounce_within", 1000),
            persist=getattr(settings, "persist", 0),
        )
    except ValidationError as ex:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in ex.errors())
        raise ConfigError(f"invalid monitor detector settings: {problems}") from ex


class Debounced:
    """A detector whose signals count only once confirmed (the `Detector` contract).

    The first signal opens a candidate. It is confirmed by `debounce` signals in the same
    direction, each within `within` values of the previous (one the other way drops the
    candidate: a spike up then down is no shift), or — with `persist` > 0 — when the mean of
    the last half of the next `persist` values is still past the midpoint between the
    signal's means before and after (always, when the signal has no means). Otherwise it is
    dropped and counted in `suppressed`. The confirmed signal keeps the first one's window.

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

    def update(self, x: float, tx_id: str | None = None) -> DetectorSignal | None:
        """Feed the inner detector; return a signal once confirmed."""
        signal = self.inner.update(x, tx_id)
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


@dataclass
class Detection:
    """A drift detection waiting for enough new labels before it becomes a request."""

    detector: str
    tx_id: str
    labels_at: int
    evidence: dict[str, Any]
    signals: list[dict[str, Any]] = field(default_factory=list)


def _as_reference(values: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.array(values, dtype=float).ravel()


@dataclass
class RetrainPolicy:
    """Per-model retrain state; one instance lives in the monitor's stateful step.

    `settings` is a `MonitorSettings` (converted by `monitor_config`) or a `MonitorConfig`;
    `references` maps a feature (or `error_rate`) to its training distribution. Picklable;
    `copy.deepcopy` shares the frozen configuration and the reference arrays.
    """

    model: str
    settings: MonitorSettings | MonitorConfig
    champion: int | None = None
    labels: int = 0
    labels_at_request: int = 0
    last_request_at: float | None = None
    pending: Detection | None = None
    detections: list[dict[str, Any]] = field(default_factory=list)
    references: dict[str, np.ndarray] = field(default_factory=dict)
    detections_total: int = 0
    streams: dict[str, list[Detector]] = field(default_factory=dict, repr=False)
    _error_version: int | None = field(default=None, init=False, repr=False)
    _config: MonitorConfig | None = field(default=None, init=False, repr=False)
    _config_of: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.references = {k: _as_reference(v) for k, v in self.references.items()}

    @property
    def config(self) -> MonitorConfig:
        """The configuration in force (rebuilt when `settings` is replaced)."""
        if self._config is None or self._config_of is not self.settings:
            settings = self.settings
            self._config = settings if isinstance(settings, MonitorConfig) \
                else monitor_config(settings)
            self._config_of = settings
        return self._config

    def observe(self, obs: Observation, now: float) -> list[RetrainRequest]:
        """Take one observation; return the retrain requests it triggers (zero or one)."""
        if isinstance(obs, LabelSeen):
            self.labels += 1
        elif isinstance(obs, ChampionChanged):
            self.champion = obs.version
        elif isinstance(obs, ErrorObserved):
            self._observe_error(obs)
        elif isinstance(obs, FeatureObserved):
            feature = obs.feature or self.config.default_feature
            self._observe(feature, obs.value, obs.tx_id, {})
        elif isinstance(obs, ReferenceSet):
            self._set_reference(obs.feature, _as_reference(obs.values))
        request = self._decide(now)
        return [request] if request is not None else []

    def _observe_error(self, obs: ErrorObserved) -> None:
        serving = self.champion if self.champion is not None else obs.version
        if obs.version != serving:
            return  # a late prediction of a replaced model says nothing about the serving one
        if ERROR_RATE not in self.streams or self._error_version != obs.version:
            # A newly serving model (promoted or rolled back to) starts a new error history.
            self.streams[ERROR_RATE] = self._build(ERROR_RATE, self.config.error_detectors)
            self._error_version = obs.version
        self._observe(ERROR_RATE, float(obs.error), obs.tx_id, {"version": obs.version})

    def _observe(self, stream: str, value: float, tx_id: str, extra: dict[str, Any]) -> None:
        detectors = self.streams.get(stream)
        if detectors is None:
            configs = self.config.feature_detectors.get(stream)
            if configs is None:
                return  # not a monitored feature
            detectors = self.streams[stream] = self._build(stream, configs)
        for detector in detectors:
            signal = detector.update(value, tx_id)
            if signal is not None:
                self._detect(signal, tx_id, extra)

    def _build(self, stream: str, configs: Sequence[DetectorConfig]) -> list[Detector]:
        cfg, reference = self.config, self.references.get(stream)
        direction = "increase" if stream == ERROR_RATE else "both"
        built: list[Detector] = []
        for config in configs:
            if config.needs_reference and reference is None:
                continue  # built when the reference arrives
            detector: Detector = build_detector(config, stream, reference, direction)
            if cfg.debounce > 1 or cfg.persist > 0:
                detector = Debounced(detector, cfg.debounce, cfg.persist, cfg.debounce_within)
            built.append(detector)
        return built

    def _set_reference(self, stream: str, values: np.ndarray) -> None:
        self.references[stream] = values
        if stream not in self.streams:
            return  # built with the reference on the stream's first value
        configs = self.config.error_detectors if stream == ERROR_RATE \
            else self.config.feature_detectors.get(stream, ())
        kept = [d for d in self.streams[stream] if not d.uses_reference]
        self.streams[stream] = kept + self._build(stream, [c for c in configs
                                                           if c.needs_reference])

    def _detect(self, signal: DetectorSignal, tx_id: str, extra: dict[str, Any]) -> None:
        evidence = signal.evidence()
        detector = evidence.pop("detector")
        before, after = evidence.pop("mean_before"), evidence.pop("mean_after")
        prefix = "error_rate" if signal.feature == ERROR_RATE else "mean"
        evidence |= {f"{prefix}_before": before, f"{prefix}_now": after, **extra}
        self.detections.append({"detector": detector, "tx_id": tx_id, **evidence})
        del self.detections[:-MAX_DETECTIONS]
        self.detections_total += 1
        summary = {"detector": detector, **{k: evidence[k] for k in _SIGNAL_KEYS}}
        if self.pending is None:
            self.pending = Detection(detector, tx_id, self.labels, evidence, [summary])
        elif len(self.pending.signals) < MAX_SIGNALS:
            self.pending.signals.append(summary)

    def _decide(self, now: float) -> RetrainRequest | None:
        cfg = self.config
        since_last = None if self.last_request_at is None else now - self.last_request_at
        if since_last is not None and since_last < cfg.cooldown_s:
            return None
        new_labels = self.labels - self.labels_at_request
        if self.pending is not None:
            waited = self.labels - self.pending.labels_at
            if waited >= cfg.drift_min_labels:
                evidence = {
                    "detector": self.pending.detector, "detected_at_tx": self.pending.tx_id,
                    "labels_since_detection": waited, **self.pending.evidence,
                    "signals": self.pending.signals,
                }
                self.pending = None
                return self._request("drift", evidence, now)
            return None
        if self.champion is None and self.labels >= cfg.bootstrap_labels:
            return self._request("volume", {"rule": "bootstrap", "labels": self.labels}, now)
        if self.champion is not None and new_labels >= cfg.volume_labels:
            return self._request("volume", {"rule": "volume", "new_labels": new_labels}, now)
        return None

    def _request(self, reason: str, evidence: dict[str, Any], now: float) -> RetrainRequest:
        self.last_request_at, self.labels_at_request = now, self.labels
        return RetrainRequest(
            model=self.model, reason=reason, evidence=evidence,  # type: ignore[arg-type]
            requested_at=datetime.fromtimestamp(now, tz=UTC),
        )

    def __deepcopy__(self, memo: dict[int, Any]) -> RetrainPolicy:
        # Bytewax deep-copies state on every snapshot: frozen configuration and reference
        # arrays (replaced, never written in place) are shared, not copied.
        for shared in (self.settings, self._config, *self.references.values()):
            memo[id(shared)] = shared
        clone = copy.copy(self)
        memo[id(self)] = clone
        for name in ("pending", "detections", "references", "streams"):
            setattr(clone, name, copy.deepcopy(getattr(self, name), memo))
        return clone
