"""Tests of the retrain policy: bootstrap, volume, cooldown, error-rate and feature drift."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from fti.events import RetrainRequest
from fti.models.drift import (
    ChampionChanged,
    ErrorObserved,
    FeatureObserved,
    LabelSeen,
    Observation,
    RetrainPolicy,
)
from fti.settings import MonitorSettings

DRIFT_MIN_LABELS = 50


def _policy(**settings: float) -> RetrainPolicy:
    defaults = {"cooldown_s": 0.0, "drift_min_labels": DRIFT_MIN_LABELS}
    return RetrainPolicy("fraud-xgb", MonitorSettings(**{**defaults, **settings}))


def _feed(policy: RetrainPolicy, observations: list[Observation], now: float = 0.0
          ) -> list[RetrainRequest]:
    return [r for obs in observations for r in policy.observe(obs, now=now)]


def _labels(n: int) -> list[Observation]:
    return [LabelSeen() for _ in range(n)]


def _errors(rng: random.Random, n: int, rate: float, version: int = 1, start: int = 0
            ) -> list[Observation]:
    return [ErrorObserved(f"tx{start + i}", version, int(rng.random() < rate)) for i in range(n)]


# --- bootstrap, volume, cooldown -----------------------------------------------------------


def test_bootstrap_request_after_bootstrap_labels_without_champion() -> None:
    policy = _policy(bootstrap_labels=3)
    assert _feed(policy, _labels(2)) == []
    [request] = policy.observe(LabelSeen(), now=1767225600.0)
    assert (request.model, request.reason) == ("fraud-xgb", "volume")
    assert request.evidence == {"rule": "bootstrap", "labels": 3}
    assert request.requested_at == datetime(2026, 1, 1, tzinfo=UTC)


def test_no_bootstrap_once_a_champion_was_seen() -> None:
    policy = _policy(bootstrap_labels=3, volume_labels=1000)
    assert _feed(policy, [ChampionChanged(1), *_labels(100)]) == []


def test_volume_request_after_volume_labels_with_a_champion() -> None:
    policy = _policy(bootstrap_labels=3, volume_labels=5)
    [bootstrap] = _feed(policy, _labels(3))
    assert bootstrap.evidence["rule"] == "bootstrap"
    policy.observe(ChampionChanged(1), now=0.0)
    assert _feed(policy, _labels(4)) == []  # counted from the bootstrap request
    [volume] = policy.observe(LabelSeen(), now=0.0)
    assert (volume.reason, volume.evidence) == ("volume", {"rule": "volume", "new_labels": 5})
    assert len(_feed(policy, _labels(10))) == 2


def test_cooldown_suppresses_a_second_request_until_it_has_passed() -> None:
    policy = _policy(volume_labels=2, cooldown_s=10.0)
    policy.observe(ChampionChanged(1), now=0.0)
    assert _feed(policy, _labels(2), now=100.0) != []
    assert _feed(policy, _labels(5), now=105.0) == []
    assert policy.observe(LabelSeen(), now=109.999) == []
    [request] = policy.observe(LabelSeen(), now=110.0)
    assert request.evidence == {"rule": "volume", "new_labels": 7}


# --- drift on the live error rate ------------------------------------------------------------


def _drifted(seed: int) -> tuple[RetrainPolicy, list[RetrainRequest]]:
    """A champion's error rate goes from ~2 % (2000 predictions) to ~30 % (1000)."""
    rng = random.Random(seed)
    policy = _policy()
    policy.observe(ChampionChanged(1), now=0.0)
    requests = _feed(policy, _errors(rng, 2000, 0.02) + _errors(rng, 1000, 0.30, start=2000))
    return policy, requests


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_error_rate_increase_is_detected_and_requested_after_min_labels(seed: int) -> None:
    policy, requests = _drifted(seed)
    assert requests == []  # detected, but waiting for labels of the new regime
    first = policy.detections[0]
    assert first["detector"] == "error_rate_adwin"
    assert int(first["event_id"].removeprefix("tx")) >= 2000
    assert first["error_rate_now"] > first["error_rate_before"]
    assert _feed(policy, _labels(DRIFT_MIN_LABELS - 1)) == []
    [request] = policy.observe(LabelSeen(), now=0.0)
    assert request.reason == "drift"
    assert request.evidence["detector"] == "error_rate_adwin"
    assert request.evidence["detected_at_event"] == first["event_id"]
    assert request.evidence["labels_since_detection"] == DRIFT_MIN_LABELS
    assert request.evidence["version"] == 1
    assert policy.pending is None


def test_drift_request_waits_for_the_cooldown_too() -> None:
    policy, _ = _drifted(1)
    policy.last_request_at = 0.0
    policy.settings = policy.settings.model_copy(update={"cooldown_s": 60.0})
    assert _feed(policy, _labels(DRIFT_MIN_LABELS), now=30.0) == []
    [request] = policy.observe(LabelSeen(), now=60.0)
    assert request.reason == "drift"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_error_rate_decrease_does_not_trigger(seed: int) -> None:
    rng = random.Random(seed)
    policy = _policy()
    policy.observe(ChampionChanged(1), now=0.0)
    _feed(policy, _errors(rng, 2000, 0.30) + _errors(rng, 2000, 0.02, start=2000))
    assert policy.detections == []
    assert _feed(policy, _labels(DRIFT_MIN_LABELS * 2)) == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_new_model_version_starts_a_new_error_history(seed: int) -> None:
    rng = random.Random(seed)
    policy = _policy()
    _feed(policy, [ChampionChanged(1), *_errors(rng, 2000, 0.02)])
    _feed(policy, [ChampionChanged(2), *_errors(rng, 1000, 0.30, version=2, start=2000)])
    assert policy.detections == []


def test_late_predictions_of_an_older_version_are_ignored() -> None:
    rng = random.Random(5)
    policy = _policy()
    _feed(policy, [ChampionChanged(1), *_errors(rng, 1000, 0.02)])
    _feed(policy, [ChampionChanged(2), *_errors(rng, 2000, 0.02, version=2, start=1000)])
    _feed(policy, [ErrorObserved(f"late{i}", 1, 1) for i in range(1000)])  # all wrong
    assert policy.detections == []
    # ... and they did not reset version 2's history, which still detects its own drift.
    _feed(policy, _errors(rng, 1000, 0.30, version=2, start=3000))
    assert policy.detections[0]["version"] == 2


def test_after_a_rollback_the_restored_champion_is_monitored() -> None:
    # After a rollback to v1, v1's predictions are the live ones again, not late ones.
    rng = random.Random(6)
    policy = _policy()
    _feed(policy, [ChampionChanged(1), *_errors(rng, 1000, 0.02)])
    _feed(policy, [ChampionChanged(2), *_errors(rng, 1000, 0.02, version=2, start=1000)])
    policy.observe(ChampionChanged(1), now=0.0)  # rolled back
    _feed(policy, _errors(rng, 2000, 0.02, start=2000) + _errors(rng, 1000, 0.30, start=4000))
    assert [d["version"] for d in policy.detections][:1] == [1]


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_no_false_detection_on_a_stationary_error_stream(seed: int) -> None:
    rng = random.Random(seed)
    policy = _policy()
    requests = _feed(policy, [ChampionChanged(1), *_errors(rng, 5000, 0.05)])
    assert policy.detections == []
    assert requests == []


@pytest.mark.parametrize(("grace", "detected"), [(0, True), (300, False)])
def test_no_detection_within_the_grace_predictions(grace: int, detected: bool) -> None:
    policy = _policy(grace_predictions=grace)
    policy.observe(ChampionChanged(1), now=0.0)
    _feed(policy, [ErrorObserved(f"tx{i}", 1, int(i >= 150)) for i in range(300)])
    assert bool(policy.detections) is detected


# --- drift on an input feature ---------------------------------------------------------------


def test_feature_mean_shift_is_detected_and_requested() -> None:
    rng = random.Random(3)
    policy = _policy()
    values = [rng.gauss(3.0, 0.5) for _ in range(2000)] + [rng.gauss(4.0, 0.5) for _ in range(1000)]
    requests = _feed(policy, [ChampionChanged(1)] + [
        FeatureObserved(f"tx{i}", v) for i, v in enumerate(values)
    ])
    assert requests == []
    first = policy.detections[0]
    assert first["detector"] == "amount_adwin"
    assert int(first["event_id"].removeprefix("tx")) >= 2000
    assert first["mean_now"] > first["mean_before"]
    [request] = _feed(policy, _labels(DRIFT_MIN_LABELS))
    assert (request.reason, request.evidence["detector"]) == ("drift", "amount_adwin")
    assert request.evidence["detected_at_event"] == first["event_id"]


def test_no_feature_detection_on_a_stationary_feature() -> None:
    rng = random.Random(4)
    policy = _policy()
    _feed(policy, [FeatureObserved(f"tx{i}", rng.gauss(3.0, 0.5)) for i in range(4000)])
    assert policy.detections == []


def test_the_feature_detector_is_named_after_the_drift_feature() -> None:
    policy = _policy(grace_predictions=0)
    policy.settings = policy.settings.model_copy(update={"drift_feature": "hour_of_day"})
    _feed(policy, [FeatureObserved(f"tx{i}", float(i >= 1000) * 10) for i in range(1200)])
    assert policy.detections[0]["detector"] == "hour_of_day_adwin"
