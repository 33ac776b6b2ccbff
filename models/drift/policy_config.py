"""The retrain policy's configuration: `MonitorConfig`, built from settings by `monitor_config`
(one model, from settings alone) or by `retrain_config` (one declared model of a project).

Which detectors watch the error rate and each feature, how detections are confirmed, and
the label and cooldown thresholds; the defaults are `MonitorSettings()`'s behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fti.errors import ConfigError
from fti.models.drift.detectors import DetectorConfig
from fti.models.drift.observations import ERROR_RATE
from fti.settings import MonitorSettings


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
    volume_labels: int | None = Field(20000, ge=1, description="None: no volume rule")
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
    """The policy's configuration from `settings.monitor`.

    Reads `error_detectors`, `drift_features`, `feature_detectors`, `debounce`,
    `debounce_within` and `persist`; left empty, today's ADWINs (`error_delta`,
    `feature_delta` on `drift_feature`). A detector without its own `grace` gets
    `grace_predictions`.

    >>> cfg = monitor_config(MonitorSettings(drift_feature="hour_of_day"))
    >>> cfg.features, cfg.error_detectors[0].params, cfg.feature_detectors["hour_of_day"][0].grace
    (('hour_of_day',), {'delta': 0.002}, 300)
    """
    names = [settings.drift_feature, *settings.drift_features, *settings.feature_detectors]
    return _config(settings, names, settings.drift_feature, performance=True,
                   volume_labels=settings.volume_labels, cooldown_s=settings.cooldown_s)


def retrain_config(settings: MonitorSettings, features: Sequence[str], *,
                   performance: bool = True, volume_labels: int | None = None,
                   cooldown_s: float | None = None) -> MonitorConfig:
    """The configuration of one declared model's policy: its own retrain rules on top of
    `settings.monitor` (detector kinds, deltas, grace, debounce, bootstrap and drift labels).

    `features` are monitored instead of `drift_feature` / `drift_features`, each by its
    `feature_detectors` entry or else ADWIN(`feature_delta`); `performance` False drops the
    error detectors; `volume_labels` None turns the volume rule off; `cooldown_s` None keeps
    the settings' cooldown.

    >>> cfg = retrain_config(MonitorSettings(), ["distance"], performance=False, cooldown_s=0)
    >>> cfg.features, cfg.error_detectors, cfg.volume_labels, cfg.cooldown_s
    (('distance',), (), None, 0.0)
    >>> retrain_config(MonitorSettings(), ["distance"]).feature_detectors["distance"][0].params
    {'delta': 0.0005}
    """
    return _config(settings, list(features),
                   features[0] if features else settings.drift_feature,
                   performance=performance, volume_labels=volume_labels,
                   cooldown_s=settings.cooldown_s if cooldown_s is None else cooldown_s)


def _config(settings: MonitorSettings, names: Sequence[str], default_feature: str, *,
            performance: bool, volume_labels: int | None, cooldown_s: float) -> MonitorConfig:
    grace = settings.grace_predictions
    errors = settings.error_detectors or (_adwin(settings.error_delta, grace),)
    explicit = dict(settings.feature_detectors)
    default = (_adwin(settings.feature_delta, grace),)
    try:
        return MonitorConfig(
            bootstrap_labels=settings.bootstrap_labels, volume_labels=volume_labels,
            drift_min_labels=settings.drift_min_labels, cooldown_s=cooldown_s,
            error_detectors=tuple(_detector_config(c, grace) for c in errors)
            if performance else (),
            feature_detectors={
                name: tuple(_detector_config(c, grace) for c in explicit.get(name) or default)
                for name in dict.fromkeys(names)
            },
            default_feature=default_feature,
            debounce=settings.debounce,
            debounce_within=settings.debounce_within,
            persist=settings.persist,
        )
    except ValidationError as ex:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in ex.errors())
        raise ConfigError(f"invalid monitor detector settings: {problems}") from ex
