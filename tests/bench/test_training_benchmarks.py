"""The training benchmarks run end to end at a tiny size and print the figures they promise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fti.bench import model_swap, train_overhead

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fraud"
TRAIN_KEYS = {
    "model", "rows", "train_rows", "rounds", "trees", "test_metric", "test_value", "job_s",
    "report_s", "job_with_report_s", "bare_s", "overhead", "goal", "train_vs_bare", "job_cpu_s",
    "bare_cpu_s", "omp_wait_policy", "breakdown_s",
}
STEPS = {"read", "join", "split", "hash", "train", "evaluate", "model_card", "register", "report",
         "other"}
SWAP_KEYS = {
    "trees", "depth", "omp_wait_policy", "model_bytes", "loads", "load_ms_p50", "load_ms_p99",
    "sha256_ms", "parse_ms", "warmup_ms", "predicts", "score_us_p50", "score_us_p99",
    "bare_us_p50", "bare_us_p99", "bare_1thread_us_p50", "bare_1thread_us_p99", "overhead_p99",
}


def test_train_overhead_reports_the_model_job_against_bare_xgboost() -> None:
    result = json.loads(json.dumps(
        train_overhead.main(EXAMPLE, rows=3000, repeat=1, n_estimators=15)))

    assert set(result) == TRAIN_KEYS
    assert STEPS <= set(result["breakdown_s"])
    assert result["model"] == "fraud-xgb"  # the example's served model, by default
    assert result["rows"] == 3000 and 0 < result["rounds"] <= 15
    assert result["test_metric"] == "roc_auc" and result["test_value"] > 0.7  # learnable
    # job_s and bare_s are printed rounded to 1 ms, so the ratio is only that exact.
    job, bare = result["job_s"], result["bare_s"]
    assert (job - 0.0005) / (bare + 0.0005) <= result["overhead"] <= (job + 0.0005) / (
        bare - 0.0005
    ) + 0.001
    timed = sum(result["breakdown_s"].values())
    assert timed == pytest.approx(result["job_with_report_s"], abs=0.02)
    report = result["breakdown_s"]["report"] + result["breakdown_s"]["plots"]
    assert report > 0 and result["job_s"] == pytest.approx(
        result["job_with_report_s"] - report, abs=0.002)
    assert min(result["breakdown_s"].values()) > -0.01


def test_train_overhead_needs_a_project() -> None:
    with pytest.raises(SystemExit, match="--project"):
        train_overhead.main(None, rows=100)


def test_model_swap_reports_loads_and_single_row_scores() -> None:
    result = json.loads(json.dumps(model_swap.main(loads=3, predicts=50, trees=10)))

    assert set(result) == SWAP_KEYS
    assert result["loads"] == 3 and result["predicts"] == 50 and result["model_bytes"] > 0
    assert 0 < result["load_ms_p50"] <= result["load_ms_p99"]
    assert 0 < result["score_us_p50"] <= result["score_us_p99"]
