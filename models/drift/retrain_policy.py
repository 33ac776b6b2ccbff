"""When to retrain: drift detectors per feature and on the error rate, label volume, a cooldown.

Pure logic, no I/O. Observations go in (`observe`, `fti.models.drift.observations`), retrain
requests come out. Rules:

- **bootstrap**: no champion yet and `bootstrap_labels` labels seen → `volume` request;
- **volume**: `volume_labels` new labels since the last request → `volume` request (None:
  never);
- **drift**: a detector of `MonitorConfig` (`fti.models.drift.policy_config`) signals — on
  the live error rate (increases only; ADWIN by default) or on an input feature (ADWIN on
  log1p(amount) by default; Page-Hinkley, KSWIN, and PSI / KS window tests against the
  champion's training data per feature). With `debounce` > 1 or `persist` > 0 a signal must
  be confirmed before it counts (`fti.models.drift.debounce.Debounced`).
  The request waits until `drift_min_labels` labels arrived after the detection, so the
  training job has examples of the new regime; its evidence names every detector that fired;
- nothing is requested within `cooldown_s` of the previous request.

>>> policy = RetrainPolicy("risk-xgb", MonitorSettings(bootstrap_labels=2, cooldown_s=0))
>>> policy.observe(LabelSeen(), now=0.0)
[]
>>> [r.reason for r in policy.observe(LabelSeen(), now=1.0)]
['volume']
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from fti.events import RetrainRequest
from fti.models.drift.base import Detector, DetectorSignal
from fti.models.drift.debounce import Debounced
from fti.models.drift.detectors import DetectorConfig, build_detector
from fti.models.drift.observations import (
    ERROR_RATE,
    ChampionChanged,
    ErrorObserved,
    FeatureObserved,
    LabelSeen,
    Observation,
    ReferenceSet,
)
from fti.models.drift.policy_config import MonitorConfig, monitor_config
from fti.settings import MonitorSettings

MAX_DETECTIONS = 256  # recent detections kept in the state (the metric counts them all)
MAX_SIGNALS = 16  # signals listed in one request's evidence
_SIGNAL_KEYS = ("feature", "statistic", "value", "threshold", "window_size",
                "window_start_event", "window_end_event")


@dataclass
class Detection:
    """A drift detection waiting for enough new labels before it becomes a request."""

    detector: str
    event_id: str
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
            self._observe(feature, obs.value, obs.event_id, {})
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
        self._observe(ERROR_RATE, float(obs.error), obs.event_id, {"version": obs.version})

    def _observe(self, stream: str, value: float, event_id: str, extra: dict[str, Any]) -> None:
        detectors = self.streams.get(stream)
        if detectors is None:
            configs = self.config.feature_detectors.get(stream)
            if configs is None:
                return  # not a monitored feature
            detectors = self.streams[stream] = self._build(stream, configs)
        for detector in detectors:
            signal = detector.update(value, event_id)
            if signal is not None:
                self._detect(signal, event_id, extra)

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

    def _detect(self, signal: DetectorSignal, event_id: str, extra: dict[str, Any]) -> None:
        evidence = signal.evidence()
        detector = evidence.pop("detector")
        before, after = evidence.pop("mean_before"), evidence.pop("mean_after")
        prefix = "error_rate" if signal.feature == ERROR_RATE else "mean"
        evidence |= {f"{prefix}_before": before, f"{prefix}_now": after, **extra}
        self.detections.append({"detector": detector, "event_id": event_id, **evidence})
        del self.detections[:-MAX_DETECTIONS]
        self.detections_total += 1
        summary = {"detector": detector, **{k: evidence[k] for k in _SIGNAL_KEYS}}
        if self.pending is None:
            self.pending = Detection(detector, event_id, self.labels, evidence, [summary])
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
                    "detector": self.pending.detector, "detected_at_event": self.pending.event_id,
                    "labels_since_detection": waited, **self.pending.evidence,
                    "signals": self.pending.signals,
                }
                self.pending = None
                return self._request("drift", evidence, now)
            return None
        if self.champion is None and self.labels >= cfg.bootstrap_labels:
            return self._request("volume", {"rule": "bootstrap", "labels": self.labels}, now)
        if (self.champion is not None and cfg.volume_labels is not None
                and new_labels >= cfg.volume_labels):
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
