"""When to retrain: River drift detectors, label volume and a cooldown. Pure logic, no I/O.

Observations go in (`observe`), retrain requests come out. Rules:

- **bootstrap**: no champion yet and `bootstrap_labels` labels seen → `volume` request;
- **volume**: `volume_labels` new labels since the last request → `volume` request;
- **drift**: ADWIN on the live error rate (an *increase* only) or on an input feature fires;
  the request waits until `drift_min_labels` labels arrived after the detection, so the
  training job has examples of the new regime;
- nothing is requested within `cooldown_s` of the previous request.

>>> policy = RetrainPolicy("fraud-xgb", MonitorSettings(bootstrap_labels=2, cooldown_s=0))
>>> policy.observe(LabelSeen(), now=0.0)
[]
>>> [r.reason for r in policy.observe(LabelSeen(), now=1.0)]
['volume']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from river import drift

from fti.events import RetrainRequest
from fti.settings import MonitorSettings


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
    """One value of the monitored input feature."""

    tx_id: str
    value: float


@dataclass(frozen=True)
class ChampionChanged:
    """The registry promoted (or rolled back to) `version`."""

    version: int


Observation = LabelSeen | ErrorObserved | FeatureObserved | ChampionChanged


@dataclass
class Detection:
    """A drift detection waiting for enough new labels before it becomes a request."""

    detector: str
    tx_id: str
    labels_at: int
    evidence: dict[str, Any]


@dataclass
class RetrainPolicy:
    """Per-model retrain state; one instance lives in the monitor's stateful step."""

    model: str
    settings: MonitorSettings
    champion: int | None = None
    labels: int = 0
    labels_at_request: int = 0
    last_request_at: float | None = None
    pending: Detection | None = None
    detections: list[dict[str, Any]] = field(default_factory=list)
    _error: drift.ADWIN | None = None
    _errors_seen: int = 0
    _error_version: int | None = None
    _feature: drift.ADWIN | None = None
    _features_seen: int = 0

    def observe(self, obs: Observation, now: float) -> list[RetrainRequest]:
        """Take one observation; return the retrain requests it triggers (zero or one)."""
        if isinstance(obs, LabelSeen):
            self.labels += 1
        elif isinstance(obs, ChampionChanged):
            self.champion = obs.version
        elif isinstance(obs, ErrorObserved):
            self._observe_error(obs)
        elif isinstance(obs, FeatureObserved):
            self._observe_feature(obs)
        request = self._decide(now)
        return [request] if request is not None else []

    def _observe_error(self, obs: ErrorObserved) -> None:
        serving = self.champion if self.champion is not None else obs.version
        if obs.version != serving:
            return  # a late prediction of a replaced model says nothing about the serving one
        if self._error is None or self._error_version != obs.version:
            # A newly serving model (promoted or rolled back to) starts a new error history.
            self._error = drift.ADWIN(delta=self.settings.error_delta)
            self._error_version, self._errors_seen = obs.version, 0
        before = self._error.estimation
        self._error.update(obs.error)
        self._errors_seen += 1
        if (
            self._error.drift_detected
            and self._errors_seen > self.settings.grace_predictions
            and self._error.estimation > before
        ):
            self._detect("error_rate_adwin", obs.tx_id, {
                "version": obs.version,
                "error_rate_before": round(before, 4),
                "error_rate_now": round(self._error.estimation, 4),
            })

    def _observe_feature(self, obs: FeatureObserved) -> None:
        if self._feature is None:
            self._feature = drift.ADWIN(delta=self.settings.feature_delta)
        before = self._feature.estimation
        self._feature.update(obs.value)
        self._features_seen += 1
        if self._feature.drift_detected and self._features_seen > self.settings.grace_predictions:
            self._detect(f"{self.settings.drift_feature}_adwin", obs.tx_id, {
                "mean_before": round(before, 4), "mean_now": round(self._feature.estimation, 4),
            })

    def _detect(self, detector: str, tx_id: str, evidence: dict[str, Any]) -> None:
        self.detections.append({"detector": detector, "tx_id": tx_id, **evidence})
        if self.pending is None:
            self.pending = Detection(detector, tx_id, self.labels, evidence)

    def _decide(self, now: float) -> RetrainRequest | None:
        since_last = None if self.last_request_at is None else now - self.last_request_at
        if since_last is not None and since_last < self.settings.cooldown_s:
            return None
        new_labels = self.labels - self.labels_at_request
        if self.pending is not None:
            waited = self.labels - self.pending.labels_at
            if waited >= self.settings.drift_min_labels:
                evidence = {
                    "detector": self.pending.detector, "detected_at_tx": self.pending.tx_id,
                    "labels_since_detection": waited, **self.pending.evidence,
                }
                self.pending = None
                return self._request("drift", evidence, now)
            return None
        if self.champion is None and self.labels >= self.settings.bootstrap_labels:
            return self._request("volume", {"rule": "bootstrap", "labels": self.labels}, now)
        if self.champion is not None and new_labels >= self.settings.volume_labels:
            return self._request("volume", {"rule": "volume", "new_labels": new_labels}, now)
        return None

    def _request(self, reason: str, evidence: dict[str, Any], now: float) -> RetrainRequest:
        self.last_request_at, self.labels_at_request = now, self.labels
        return RetrainRequest(
            model=self.model, reason=reason, evidence=evidence,  # type: ignore[arg-type]
            requested_at=datetime.fromtimestamp(now, tz=UTC),
        )
