"""The retrain policy's detectors: one set per feature, references, debounce, the evidence of a
drift request, and its state through pickle and deepcopy."""

from __future__ import annotations

import copy
import pickle
import random
from typing import Any

import numpy as np
import pytest

from fti.events import RetrainRequest
from fti.models.drift import (
    ChampionChanged,
    Debounced,
    DetectorConfig,
    ErrorObserved,
    FeatureObserved,
    LabelSeen,
    MonitorConfig,
    Observation,
    ReferenceSet,
    RetrainPolicy,
)

MIN_LABELS = 50
ADWIN = DetectorConfig(kind="adwin", params={"delta": 0.0005})
PSI = DetectorConfig(kind="psi", params={"window": 200, "threshold": 0.2})


def _policy(references: dict[str, Any] | None = None, **config: Any) -> RetrainPolicy:
    defaults: dict[str, Any] = {"cooldown_s": 0.0, "drift_min_labels": MIN_LABELS,
                                "feature_detectors": {"amount": (ADWIN,)}}
    return RetrainPolicy("fraud-xgb", MonitorConfig(**{**defaults, **config}),
                         references=references or {})


def _feed(policy: RetrainPolicy, observations: list[Observation]) -> list[RetrainRequest]:
    return [r for obs in observations for r in policy.observe(obs, now=0.0)]


def _feature(values: np.ndarray, feature: str = "amount", start: int = 0) -> list[Observation]:
    return [FeatureObserved(f"tx{start + i}", float(v), feature) for i, v in enumerate(values)]


def _gauss(seed: int, *parts: tuple[int, float]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(mean, 0.5, n) for n, mean in parts])


def _tx_index(event_id: str) -> int:
    return int(event_id.removeprefix("tx"))


# --- detectors per feature -------------------------------------------------------------------


def test_each_feature_has_its_own_detectors() -> None:
    hours = DetectorConfig(kind="page_hinkley", params={"threshold": 100, "delta": 0.5})
    policy = _policy(feature_detectors={"amount": (ADWIN,), "hour_of_day": (hours,)})
    rng = random.Random(1)
    night = [float(rng.randint(10, 18)) for _ in range(1500)] + [
        float(rng.randint(0, 4)) for _ in range(500)]
    observations = [obs for i in range(2000) for obs in (
        FeatureObserved(f"tx{i}", rng.gauss(3.0, 0.5), "amount"),
        FeatureObserved(f"tx{i}", night[i], "hour_of_day"),
    )]
    _feed(policy, observations)
    assert {d["detector"] for d in policy.detections} == {"hour_of_day_page_hinkley"}
    first = policy.detections[0]
    assert (first["feature"], first["statistic"]) == ("hour_of_day", "page_hinkley")
    assert first["mean_now"] < first["mean_before"] and _tx_index(first["event_id"]) >= 1500
    assert set(policy.streams) == {"amount", "hour_of_day"}


def test_unmonitored_features_are_ignored() -> None:
    policy = _policy()
    _feed(policy, _feature(np.r_[np.zeros(500), np.full(500, 9.0)], feature="country_code"))
    assert (policy.detections, list(policy.streams)) == ([], [])


# --- references --------------------------------------------------------------------------------


def test_psi_against_the_reference_set_by_an_observation() -> None:
    policy = _policy(feature_detectors={"amount": (PSI,)})
    values = _gauss(2, (1000, 3.0), (1000, 3.8))
    _feed(policy, _feature(values))
    assert policy.detections == [] and policy.streams["amount"] == []  # no reference yet
    policy.observe(ReferenceSet("amount", _gauss(3, (2000, 3.0))), now=0.0)
    _feed(policy, _feature(values, start=2000))
    first = policy.detections[0]
    assert (first["detector"], first["statistic"], first["threshold"]) == ("amount_psi", "psi", 0.2)
    assert first["value"] >= 0.2 and first["window_size"] == 200
    assert 3000 <= _tx_index(first["event_id"]) < 3200
    assert first["window_end_event"] == first["event_id"]
    assert _tx_index(first["window_start_event"]) == _tx_index(first["event_id"]) - 199


def test_a_new_reference_replaces_only_the_window_tests() -> None:
    policy = _policy(feature_detectors={"amount": (ADWIN, PSI)},
                     references={"amount": list(_gauss(4, (500, 3.0)))})
    _feed(policy, _feature(_gauss(5, (300, 3.0))))
    adwin, psi_test = policy.streams["amount"]
    policy.observe(ReferenceSet("amount", _gauss(6, (500, 3.0))), now=0.0)
    assert policy.streams["amount"][0] is adwin and policy.streams["amount"][1] is not psi_test
    assert adwin.seen == 300


def test_an_error_rate_reference_feeds_error_window_tests() -> None:
    ks = DetectorConfig(kind="ks", params={"window": 300, "threshold": 0.001})
    policy = _policy(error_detectors=(ks,))
    rng = random.Random(7)
    reference = [float(rng.random() < 0.05) for _ in range(2000)]
    _feed(policy, [ChampionChanged(1), ReferenceSet("error_rate", reference)])
    _feed(policy, [ErrorObserved(f"tx{i}", 1, int(rng.random() < (0.05 if i < 1000 else 0.3)))
                   for i in range(1600)])
    first = policy.detections[0]
    assert (first["detector"], first["statistic"], first["version"]) == (
        "error_rate_ks", "ks_pvalue", 1)
    assert first["error_rate_now"] > first["error_rate_before"] and first["value"] <= 0.001


# --- debounce ----------------------------------------------------------------------------------

SPIKE = ((2000, 3.0), (40, 5.0), (1500, 3.0))  # 40 values at +4 sd, then back
SHIFT = ((2000, 3.0), (1500, 5.0))


@pytest.mark.parametrize("seed", [1, 2])
def test_persistence_suppresses_a_spike_and_confirms_a_shift(seed: int) -> None:
    undebounced = _policy()
    _feed(undebounced, _feature(_gauss(seed, *SPIKE)))
    assert undebounced.detections != []  # the spike alone is detected without debounce
    policy = _policy(persist=200)
    _feed(policy, _feature(_gauss(seed, *SPIKE)))
    assert policy.detections == []
    assert policy.streams["amount"][0].suppressed >= 1
    policy = _policy(persist=200)
    _feed(policy, _feature(_gauss(seed, *SHIFT)))
    first = policy.detections[0]
    assert (first["confirmed_by"], first["confirmations"]) == ("persistence", 1)
    assert _tx_index(first["event_id"]) >= 2200  # counted once the shift held for 200 values
    assert 2000 <= _tx_index(first["window_end_event"]) < _tx_index(first["event_id"])


@pytest.mark.parametrize("seed", [1, 2])
def test_consecutive_signals_suppress_a_spike_and_confirm_a_shift(seed: int) -> None:
    reference = {"amount": _gauss(seed + 10, (2000, 3.0))}
    config = {"feature_detectors": {"amount": (PSI,)}, "debounce": 2, "debounce_within": 250}
    policy = _policy(reference, **config)
    _feed(policy, _feature(_gauss(seed, *SPIKE)))
    assert policy.detections == [] and policy.streams["amount"][0].suppressed == 1
    policy = _policy(reference, **config)
    _feed(policy, _feature(_gauss(seed, *SHIFT)))
    first = policy.detections[0]
    assert (first["confirmed_by"], first["confirmations"]) == ("signals", 2)
    # a new window:
    assert _tx_index(first["event_id"]) - _tx_index(first["window_end_event"]) >= 200


def test_default_debounce_wraps_nothing() -> None:
    policy = _policy()
    _feed(policy, _feature(np.zeros(3)))
    assert not isinstance(policy.streams["amount"][0], Debounced)


# --- evidence --------------------------------------------------------------------------------


def test_a_drift_request_lists_every_detector_with_feature_statistic_and_window() -> None:
    policy = _policy(feature_detectors={"amount": (ADWIN, PSI)},
                     references={"amount": _gauss(8, (2000, 3.0))})
    rng = random.Random(9)
    policy.observe(ChampionChanged(1), now=0.0)
    values = _gauss(9, *SHIFT)
    observations = [obs for i, v in enumerate(values) for obs in (
        FeatureObserved(f"tx{i}", float(v)),
        ErrorObserved(f"tx{i}", 1, int(rng.random() < (0.02 if i < 2000 else 0.3))),
    )]
    assert _feed(policy, observations) == []
    [request] = _feed(policy, [LabelSeen() for _ in range(MIN_LABELS)])
    evidence = request.evidence
    assert request.reason == "drift" and evidence["labels_since_detection"] == MIN_LABELS
    assert evidence["detector"] == evidence["signals"][0]["detector"]
    assert evidence["detected_at_event"] == policy.detections[0]["event_id"]
    detectors = {s["detector"] for s in evidence["signals"]}
    assert detectors == {"amount_adwin", "amount_psi", "error_rate_adwin"}
    for signal in evidence["signals"]:
        assert set(signal) == {"detector", "feature", "statistic", "value", "threshold",
                               "window_size", "window_start_event", "window_end_event"}
        assert signal["feature"] in ("amount", "error_rate") and signal["window_size"] > 0
    assert RetrainRequest.model_validate_json(request.to_json()) == request


# --- state: pickle and deepcopy ----------------------------------------------------------------


def _busy_policy() -> tuple[RetrainPolicy, list[Observation]]:
    ks = DetectorConfig(kind="kswin", params={"alpha": 1e-4})
    policy = _policy(feature_detectors={"amount": (ADWIN, PSI, ks)}, persist=100,
                     references={"amount": _gauss(11, (1000, 3.0))})
    values = _gauss(12, (1500, 3.0), (1000, 4.0))
    observations: list[Observation] = [ChampionChanged(1)] + _feature(values)
    observations += [LabelSeen()] * 100
    return policy, observations


def _outcome(policy: RetrainPolicy, observations: list[Observation]) -> list[Any]:
    return [r.evidence for r in _feed(policy, observations)] + policy.detections


def test_state_round_trips_through_deepcopy_and_pickle() -> None:
    policy, observations = _busy_policy()
    _feed(policy, observations[:1600])
    copied, restored = copy.deepcopy(policy), pickle.loads(pickle.dumps(policy))
    expected = _outcome(policy, observations[1600:])
    assert expected != [] and policy.detections_total > 0
    assert _outcome(copied, observations[1600:]) == expected
    assert _outcome(restored, observations[1600:]) == expected


def test_deepcopy_shares_only_what_never_changes() -> None:
    policy, observations = _busy_policy()
    _feed(policy, observations[:500])
    clone = copy.deepcopy(policy)
    assert clone.config is policy.config and clone.settings is policy.settings
    assert clone.references["amount"] is policy.references["amount"]
    assert clone.streams["amount"][0] is not policy.streams["amount"][0]
    assert clone.detections is not policy.detections
