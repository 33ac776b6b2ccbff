"""Model swap and single-row scoring: what a hot swap costs and what one prediction costs.

`load_ms_*`: `load_serving_model` on a registered XGBoost model (sha256 check of the artifact,
UBJ load, one warm-up prediction), median and p99 over ``--loads`` loads; `sha256_ms`, `parse_ms`
and `warmup_ms` split its median into those three parts (timed separately). `score_us_*`:
``ServingModel.score`` on a 1-row matrix, warm, over ``--predicts`` calls, against bare
``booster.inplace_predict`` on the same row (the limit); `overhead_p99` = score p99 / bare p99.
Prints one JSON line. Usage: fti bench model-swap --loads 200 --predicts 10000
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from fti.models.registry import ModelRegistry
from fti.models.serving import ServingModel, load_serving_model
from fti.models.trainers.xgboost import LoadedXGBoost, legacy_signature
from fti.models.trainers.xgboost_model import MODEL_FILE, load_model, save_model

MODEL = "bench-model"
#: Input columns of the registered model (as many as a small tabular model reads).
FEATURE_COLUMNS = tuple(f"x{i:02d}" for i in range(12))


def register_model(registry: ModelRegistry, trees: int, depth: int, seed: int = 7) -> int:
    """Train a ``trees`` x ``depth`` booster on synthetic rows, register it; its version."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(20_000, len(FEATURE_COLUMNS))).astype(np.float32)
    y = (X[:, 0] + X[:, 5] + rng.normal(0, 0.5, len(X)) > 1.5).astype(np.int8)
    params = {"objective": "binary:logistic", "max_depth": depth, "tree_method": "hist",
              "nthread": 1, "seed": seed}
    booster = xgb.train(params, xgb.DMatrix(X, y), num_boost_round=trees)
    booster.feature_names = list(FEATURE_COLUMNS)
    with tempfile.TemporaryDirectory(prefix="fti-bench-model-") as staging:
        save_model(booster, Path(staging) / MODEL_FILE)
        # Every registered version ships its report (the registry's default file name).
        (Path(staging) / "model_card.md").write_text("# benchmark model\n")
        version = registry.register(
            MODEL, Path(staging), gates={"passed": True, "reasons": []}, promoted=True
        )
    return version.version


def interleaved(calls: list[Callable[[], Any]], n: int) -> np.ndarray:
    """Seconds of each call, shape (n, len(calls)): the calls take turns, so a change in the
    machine's load between them hits all alike."""
    out = np.empty((n, len(calls)))
    for i in range(n):
        for j, call in enumerate(calls):
            start = time.perf_counter()
            result = call()
            out[i, j] = time.perf_counter() - start
            del result  # freed outside the timed span
    return out


def _load_parts(registry: ModelRegistry, version: int) -> tuple[float, float, float, float]:
    """Seconds of the sha256 check, parse and warm-up of one load done by hand, then of one
    whole `load_serving_model` (the two take turns)."""
    start = time.perf_counter()
    path = registry.artifact_path(MODEL, version, MODEL_FILE)
    checked = time.perf_counter()
    booster = load_model(path)
    model = ServingModel(MODEL, version, "xgboost", "binary", FEATURE_COLUMNS, None,
                         LoadedXGBoost(booster, legacy_signature(booster)))
    parsed = time.perf_counter()
    model.score(np.zeros((1, len(FEATURE_COLUMNS)), dtype=np.float32))
    warmed = time.perf_counter()
    swapped = load_serving_model(registry, MODEL, version)
    loaded = time.perf_counter()
    del model, swapped  # freed outside the timed spans
    return checked - start, parsed - checked, warmed - parsed, loaded - warmed


def _ms(values: np.ndarray, q: float) -> float:
    return round(float(np.percentile(values, q)) * 1e3, 3)


def _us(values: np.ndarray, q: float) -> float:
    return round(float(np.percentile(values, q)) * 1e6, 1)


def main(
    loads: int = 200, predicts: int = 10_000, trees: int = 200, depth: int = 4
) -> dict[str, Any]:
    """Register one model in a temporary registry, time its loads, then single-row scoring."""
    with tempfile.TemporaryDirectory(prefix="fti-bench-swap-") as tmp:
        registry = ModelRegistry(Path(tmp) / "registry")
        version = register_model(registry, trees, depth)
        parts = np.array([_load_parts(registry, version) for _ in range(loads)])
        load = parts[:, 3]
        model = load_serving_model(registry, MODEL, version)
        size = registry.artifact_path(MODEL, version, MODEL_FILE).stat().st_size
    row = np.random.default_rng(1).normal(size=(1, len(FEATURE_COLUMNS))).astype(np.float32)
    booster = model.model.booster
    single = booster.copy()
    single.set_param({"nthread": 1})
    calls = [lambda: model.score(row), lambda: booster.inplace_predict(row),
             lambda: single.inplace_predict(row)]
    interleaved(calls, 100)  # warm every path before timing
    score, bare, bare_1 = interleaved(calls, predicts).T
    return {
        "trees": trees,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "depth": depth,
        "model_bytes": size,
        "loads": loads,
        "load_ms_p50": _ms(load, 50),
        "load_ms_p99": _ms(load, 99),
        "sha256_ms": _ms(parts[:, 0], 50),
        "parse_ms": _ms(parts[:, 1], 50),
        "warmup_ms": _ms(parts[:, 2], 50),
        "predicts": predicts,
        "score_us_p50": _us(score, 50),
        "score_us_p99": _us(score, 99),
        "bare_us_p50": _us(bare, 50),
        "bare_us_p99": _us(bare, 99),
        "bare_1thread_us_p50": _us(bare_1, 50),
        "bare_1thread_us_p99": _us(bare_1, 99),
        "overhead_p99": round(float(np.percentile(score, 99) / np.percentile(bare, 99)), 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=200, help="loads to time (median, p99)")
    parser.add_argument("--predicts", type=int, default=10_000, help="single-row predictions")
    parser.add_argument("--trees", type=int, default=200, help="trees of the registered model")
    parser.add_argument("--depth", type=int, default=4)
    args = parser.parse_args()
    print(json.dumps(main(args.loads, args.predicts, args.trees, args.depth)))
