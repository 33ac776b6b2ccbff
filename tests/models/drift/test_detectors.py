"""Contract and maths of the drift detectors: every kind, PSI / KS by hand, evidence, reset."""

from __future__ import annotations

import copy
import json
import math
import pickle

import numpy as np
import pytest
from pydantic import ValidationError
from river import drift
from scipy import stats

from fti.models.drift import (
    DetectorConfig,
    FastKSWIN,
    ReferenceWindowTest,
    bin_proportions,
    build_detector,
    ks_pvalue,
    ks_statistic,
    population_stability_index,
    psi,
    quantile_edges,
)

N = 1000  # values before the shift; as many after
# Parameters quiet on a stationary N(0, 0.25²) stream of 2N values and loud on a +1 shift.
CONFIGS = {
    "adwin": DetectorConfig(kind="adwin"),
    "page_hinkley": DetectorConfig(kind="page_hinkley"),
    "kswin": DetectorConfig(kind="kswin", params={"alpha": 1e-6, "seed": 7}),
    "psi": DetectorConfig(kind="psi", params={"window": 300, "threshold": 0.2}),
    "ks": DetectorConfig(kind="ks", params={"window": 300, "threshold": 1e-4}),
}
EVIDENCE_KEYS = {
    "detector", "feature", "statistic", "value", "threshold", "window_size", "window_start_event",
    "window_end_event", "mean_before", "mean_after", "confirmations", "confirmed_by",
}


def _values(seed: int, shift: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.r_[rng.normal(0, 0.25, N), rng.normal(shift, 0.25, N)]


def _detector(kind: str, seed: int = 0, **overrides: object):
    config = CONFIGS[kind].model_copy(update=overrides)
    reference = np.random.default_rng(1000 + seed).normal(0, 0.25, 2000)
    return build_detector(config, "amount", reference=reference)


def _signals(detector, values: np.ndarray) -> list[tuple[int, object]]:
    return [(i, s) for i, x in enumerate(values) if (s := detector.update(x, f"tx{i}"))]


# --- the contract, for every kind -------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("kind", list(CONFIGS))
def test_fires_after_an_abrupt_shift_and_not_on_a_stationary_stream(kind: str, seed: int) -> None:
    shifted = _signals(_detector(kind, seed), _values(seed, 1.0))
    assert shifted, f"{kind} missed the shift"
    assert shifted[0][0] >= N, f"{kind} fired before the shift at {shifted[0][0]}"
    assert _signals(_detector(kind, seed), _values(seed, 0.0)) == []


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_a_signal_carries_its_evidence(kind: str) -> None:
    i, signal = _signals(_detector(kind), _values(3, 1.0))[0]
    evidence = signal.evidence()
    assert set(evidence) == EVIDENCE_KEYS
    assert (evidence["detector"], evidence["feature"]) == (f"amount_{kind}", "amount")
    assert evidence["window_end_event"] == f"tx{i}"
    assert evidence["window_size"] >= 1 and evidence["mean_after"] > evidence["mean_before"]
    if evidence["window_start_event"] is not None:  # kept for windows of up to 1024 values
        assert int(evidence["window_start_event"][2:]) == i - evidence["window_size"] + 1
    json.dumps(evidence)


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_increase_only_ignores_a_decrease(kind: str) -> None:
    detector = _detector(kind, direction="increase")
    assert _signals(detector, _values(4, -1.0)) == []
    assert _signals(_detector(kind, direction="increase"), _values(4, 1.0)) != []


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_no_signal_within_grace(kind: str) -> None:
    values = _values(5, 1.0)
    first = _signals(_detector(kind), values)[0][0]
    later = _signals(_detector(kind, grace=first + 1), values)
    assert all(i > first for i, _ in later)


@pytest.mark.parametrize("kind", ["adwin", "page_hinkley", "kswin"])
def test_reset_forgets_the_past(kind: str) -> None:
    detector = _detector(kind)
    values = _values(6, 1.0)
    _signals(detector, values[:N])
    detector.reset()
    assert detector.seen == 0
    assert _signals(detector, values[N:]) == []  # the new level is all it has seen


def test_reset_of_a_window_test_needs_a_full_window_again() -> None:
    detector = _detector("psi")
    shifted = np.full(299, 1.0)
    _signals(detector, np.r_[np.zeros(250), shifted[:50]])
    detector.reset()
    assert _signals(detector, shifted) == []  # 299 < window
    assert [i for i, _ in _signals(detector, [1.0])] == [0]


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_round_trips_through_pickle_and_deepcopy(kind: str) -> None:
    values = _values(8, 1.0)
    detector = _detector(kind)
    _signals(detector, values[:N + 10])
    expected = [(i, s) for i, s in _signals(copy.deepcopy(detector), values[N + 10:])]
    assert _signals(pickle.loads(pickle.dumps(detector)), values[N + 10:]) == expected
    assert _signals(detector, values[N + 10:]) == expected


# --- KSWIN is River's, faster ----------------------------------------------------------------


def test_fast_kswin_decides_exactly_as_river_kswin() -> None:
    values = _values(9, 0.5)[N - 300:N + 200]
    river, fast = drift.KSWIN(seed=3), FastKSWIN(seed=3)
    for x in values:
        river.update(x)
        fast.update(x)
        assert (fast.drift_detected, fast.p_value) == (river.drift_detected, river.p_value)


# --- PSI and KS by hand ----------------------------------------------------------------------


def test_psi_by_hand() -> None:
    # Reference 1..10 split at its median 5: 50 % / 50 %; live has 30 % / 70 %.
    expected = 0.2 * math.log(0.5 / 0.3) + 0.2 * math.log(0.7 / 0.5)
    assert psi(np.array([0.5, 0.5]), np.array([0.3, 0.7])) == pytest.approx(expected)
    live = np.array([1.0, 2, 3, 8, 9, 10, 10, 10, 10, 10])
    assert population_stability_index(np.arange(1.0, 11.0), live, bins=2) == pytest.approx(
        expected)


def test_psi_counts_an_empty_bin_as_epsilon() -> None:
    eps = 1e-4
    expected = 0.5 * math.log(1 / 0.5) + (eps - 0.5) * math.log(eps / 0.5)
    live = np.ones(10)
    assert population_stability_index(np.arange(1.0, 11.0), live, bins=2, eps=eps) == \
        pytest.approx(expected)
    assert population_stability_index(np.arange(1.0, 11.0), np.arange(1.0, 11.0)) == 0.0


def test_quantile_bins_of_binary_data_are_two() -> None:
    errors = np.r_[np.zeros(95), np.ones(5)]
    edges = quantile_edges(errors, 10)
    assert edges.tolist() == [0.0]
    assert bin_proportions(np.r_[np.zeros(7), np.ones(3)], edges).tolist() == [0.7, 0.3]


def test_ks_statistic_and_pvalue_by_hand_and_against_scipy() -> None:
    assert ks_statistic(np.array([1.0, 2, 3, 4]), np.array([3.0, 4, 5, 6])) == 0.5
    assert ks_statistic(np.array([1.0, 1, 2]), np.array([1.0, 2, 2])) == pytest.approx(1 / 3)
    rng = np.random.default_rng(10)
    a, b = rng.normal(0, 1, 400), rng.normal(0.2, 1, 300)
    expected = stats.ks_2samp(a, b, method="asymp")
    assert ks_statistic(a, b) == pytest.approx(expected.statistic, abs=1e-12)
    assert ks_pvalue(ks_statistic(a, b), 400, 300) == pytest.approx(expected.pvalue, rel=1e-9)


def test_reference_window_psi_signal_by_hand() -> None:
    test = ReferenceWindowTest(np.arange(1.0, 11.0), 10, psi_threshold=0.15, bins=2, stride=1,
                               name="amount_psi", feature="amount")
    live = [1.0, 2, 3, 8, 9, 10, 10, 10, 10, 10]
    signals = [test.update(x, f"tx{i}") for i, x in enumerate(live)]
    assert signals[:-1] == [None] * 9
    expected = 0.2 * math.log(0.5 / 0.3) + 0.2 * math.log(0.7 / 0.5)
    assert signals[-1].value == pytest.approx(expected)
    evidence = signals[-1].evidence()
    assert (evidence["statistic"], evidence["value"]) == ("psi", round(expected, 5))
    assert (evidence["threshold"], evidence["window_size"]) == (0.15, 10)
    assert (evidence["window_start_event"], evidence["window_end_event"]) == ("tx0", "tx9")
    assert (evidence["mean_before"], evidence["mean_after"]) == (5.5, 7.3)
    quiet = ReferenceWindowTest(np.arange(1.0, 11.0), 10, psi_threshold=0.2, bins=2, stride=1)
    assert [quiet.update(x) for x in live] == [None] * 10


def test_reference_window_ks_statistic_and_pvalue_modes() -> None:
    by_d = ReferenceWindowTest(np.array([1.0, 2, 3, 4]), 4, ks_threshold=0.5,
                               ks_mode="statistic", stride=1)
    signal = [by_d.update(x) for x in (3.0, 4, 5, 6)][-1]
    assert (signal.statistic, signal.value, signal.threshold) == ("ks_statistic", 0.5, 0.5)
    rng = np.random.default_rng(11)
    reference, live = rng.normal(0, 1, 1000), rng.normal(0.5, 1, 200)
    by_p = ReferenceWindowTest(reference, 200, ks_threshold=0.01, stride=200)
    signal = [by_p.update(x) for x in live][-1]
    assert signal.statistic == "ks_pvalue"
    assert signal.value == pytest.approx(stats.ks_2samp(live, reference, method="asymp").pvalue)
    assert signal.value <= 0.01


def test_window_tests_only_test_every_stride_once_full() -> None:
    test = ReferenceWindowTest(np.zeros(100), 10, psi_threshold=0.1, stride=5)
    hits = [i for i in range(30) if test.update(1.0)]
    assert hits == [9, 19, 29]  # full at 9; a finding starts a fresh window


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "params", "message"), [
    ("adwin", {"alpha": 0.1}, "does not take params"),
    ("kswin", {"window_size": 10, "stat_size": 30}, "stat_size must be smaller"),
    ("psi", {"window": 1}, "window >= 2"),
    ("ks", {"mode": "both"}, "ks_mode must be"),
])
def test_invalid_detector_configs_name_the_problem(kind: str, params: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DetectorConfig(kind=kind, params=params)


def test_window_tests_need_a_reference() -> None:
    with pytest.raises(ValueError, match="amount_psi: a psi test needs a reference"):
        build_detector(DetectorConfig(kind="psi"), "amount")


# --- the benchmark ---------------------------------------------------------------------------


def test_quick_bench_prints_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    from fti.bench import detectors as bench

    assert bench.main(["--quick", "--seeds", "1"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    rows, summary = lines[:-1], lines[-1]
    assert {r["detector"] for r in rows} >= {"adwin", "page_hinkley", "kswin", "psi", "ks"}
    assert {r["stream"] for r in rows} == {"sea_abrupt", "mean_shift_abrupt"}
    assert all(r["missed"] + (r["delay_median"] is not None) == 1 for r in rows)
    assert set(summary["summary"]) == {r["detector"] for r in rows}
