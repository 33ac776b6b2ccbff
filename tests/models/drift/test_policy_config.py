"""The monitor configuration of models/drift/policy_config.py: defaults from today's settings,
the new settings fields, and invalid detector settings."""

from __future__ import annotations

from typing import Any

import pytest

from fti.errors import ConfigError
from fti.models.drift import DetectorConfig, MonitorConfig, RetrainPolicy, monitor_config
from fti.settings import MonitorSettings


def test_monitor_config_from_todays_settings_is_the_default() -> None:
    assert monitor_config(MonitorSettings()) == MonitorConfig()
    assert RetrainPolicy("m", MonitorSettings()).config == MonitorConfig()


class _FutureMonitorSettings(MonitorSettings):
    """MonitorSettings with the fields monitor_config honours once settings.py has them."""

    drift_features: tuple[str, ...] = ("hour_of_day",)
    feature_detectors: dict[str, list[dict[str, Any]]] = {
        "channel_code": [{"kind": "psi", "params": {"threshold": 0.1}}]}
    error_detectors: list[dict[str, Any]] = [{"kind": "page_hinkley", "grace": 50}]
    debounce: int = 3
    persist: int = 0
    debounce_within: int = 400


def test_monitor_config_honours_the_new_settings_fields() -> None:
    config = monitor_config(_FutureMonitorSettings())
    assert config.features == ("amount", "hour_of_day", "channel_code")
    assert config.feature_detectors["hour_of_day"] == (
        DetectorConfig(kind="adwin", params={"delta": 0.0005}, grace=300),)
    assert config.feature_detectors["channel_code"] == (
        DetectorConfig(kind="psi", params={"threshold": 0.1}, grace=300),)  # grace_predictions
    assert config.error_detectors == (DetectorConfig(kind="page_hinkley", grace=50),)
    assert (config.debounce, config.persist, config.debounce_within) == (3, 0, 400)


def test_invalid_detector_settings_are_a_config_error() -> None:
    class Bad(MonitorSettings):
        error_detectors: list[dict[str, Any]] = [{"kind": "adwin", "params": {"window": 3}}]

    with pytest.raises(ConfigError, match="adwin does not take params"):
        monitor_config(Bad())


def test_error_rate_detectors_count_increases_only() -> None:
    with pytest.raises(ValueError, match="only count increases"):
        MonitorConfig(error_detectors=(DetectorConfig(kind="adwin", direction="both"),))
