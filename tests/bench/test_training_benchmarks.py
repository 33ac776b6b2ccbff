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
#: Figures of every kind in `kinds`, and those of some kinds only.
KIND_KEYS = {
    "model_bytes", "loads", "load_ms_p50", "load_ms_p99", "sha256_ms", "parse_ms", "warmup_ms",
    "predicts", "score_us_p50", "score_us_p99", "bare_us_p50", "bare_us_p99", "overhead_p99",
}
KIND_EXTRA_KEYS = {
    "xgboost": {"trees", "bare_1thread_us_p50", "bare_1thread_us_p99"},
    "lora": {"base_model_bytes", "base_sha256_ms", "tokens"},
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


def test_model_swap_reports_loads_and_single_row_scores_of_every_kind() -> None:
    result = json.loads(json.dumps(model_swap.main(
        loads=3, predicts=20, trees=10, lora_loads=2, lora_predicts=10)))

    assert set(result) == SWAP_KEYS | {"kinds"}
    kinds = result["kinds"]
    assert list(kinds) == ["xgboost", "mlp", "lora"]
    for kind, figures in kinds.items():
        assert set(figures) == KIND_KEYS | KIND_EXTRA_KEYS.get(kind, set()), kind
        counts = (2, 10) if kind == "lora" else (3, 20)
        assert (figures["loads"], figures["predicts"]) == counts, kind
        assert figures["model_bytes"] > 0, kind
        for measure, unit in (("load", "ms"), ("score", "us"), ("bare", "us")):
            assert 0 < figures[f"{measure}_{unit}_p50"] <= figures[f"{measure}_{unit}_p99"], kind
        parts = figures["sha256_ms"] + figures["parse_ms"] + figures["warmup_ms"]
        assert min(figures["sha256_ms"], figures["parse_ms"], figures["warmup_ms"]) > 0, kind
        # Medians of separately timed parts against the median of whole loads.
        assert 0.3 < parts / figures["load_ms_p50"] < 3, (kind, figures)
        ratio = figures["score_us_p99"] / figures["bare_us_p99"]
        assert figures["overhead_p99"] == pytest.approx(ratio, rel=0.01, abs=0.002), kind
    # The top level is XGBoost's, as before kinds were added.
    assert {k: result[k] for k in kinds["xgboost"]} == kinds["xgboost"]
    assert 1 <= result["trees"] <= 10 and result["depth"] == 4
    assert 0 < result["bare_1thread_us_p50"] <= result["bare_1thread_us_p99"]
    # LoRA loads the real MiniLM (its weights sha256-checked at every load) beside an adapter.
    lora = kinds["lora"]
    assert lora["base_model_bytes"] > 50_000_000 > lora["model_bytes"]
    assert lora["load_ms_p50"] > lora["base_sha256_ms"] > 0
    assert lora["load_ms_p50"] > kinds["mlp"]["load_ms_p50"]
    assert 20 <= lora["tokens"] <= 96  # a whole pair, within the trainer's max_length


def test_model_swap_measures_the_kinds_asked_for() -> None:
    result = model_swap.main(loads=2, predicts=10, kinds=["mlp"])

    assert set(result) == {"omp_wait_policy", "kinds"} and list(result["kinds"]) == ["mlp"]
    with pytest.raises(SystemExit, match=r"unknown \['svm'\]"):
        model_swap.main(kinds=["mlp", "svm"])
