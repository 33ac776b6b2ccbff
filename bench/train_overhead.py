"""Training-job overhead: the full XGBoost training job against bare ``xgboost.train``.

`job_s`: `run_training_job` on a fresh offline LanceDB holding ``--rows`` synthetic transactions
and their labels (schemas of `features/definitions.py`), every label in the window: read, dedupe,
point-in-time join, split, dataset hashes, fit (early stopping), evaluate, model card, register.
`bare_s`: ``xgboost.train`` on the same train matrix (already in numpy), same parameters
(`xgboost_params`) and as many rounds as the job trained (early stopping included), no eval set.
`overhead` = job_s / bare_s (goal <= 1.3); `train_vs_bare` = the job's fit step / bare_s.
`breakdown_s` times each step of the same job run (exclusive seconds: a step's inner steps are
counted once, under their own name; "matrix" is Arrow -> numpy, "importance" and "plots" are the
model card's evidence). CPU seconds and ``OMP_WAIT_POLICY`` are reported too: on a loaded
machine OpenMP's default spin-waiting makes XGBoost's two threads many times slower, and
``OMP_WAIT_POLICY=PASSIVE`` (set before the process starts) removes most of that.
Prints one JSON line. Usage: fti bench train-overhead --rows 1000000
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xgboost as xgb

import fti.models.jobs.training_job as training_job
from fti.features.definitions import (
    FEATURE_COLUMNS,
    FEATURES_SCHEMA,
    FEATURES_TABLE,
    LABEL_COLUMN,
    LABELS_SCHEMA,
    LABELS_TABLE,
)
from fti.features.training_data import Split
from fti.models.registry import ModelRegistry
from fti.models.trainers.base import ModelInputs
from fti.models.trainers.xgboost_model import features_matrix, labels_vector, xgboost_params
from fti.settings import Settings, TrainingSettings

GOAL = 1.3
T0_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
_TS = pa.timestamp("us", tz="UTC")
#: (module, function, step) timed during the job; inner steps are subtracted from outer ones.
#: Functions a module does not have (the job changes) are skipped; their time lands in "other".
STEPS: tuple[tuple[str, str, str], ...] = (
    ("fti.features.training_data", "read_offline", "read"),
    ("fti.features.training_data", "point_in_time_join", "join"),
    ("fti.features.training_data", "newest", "split"),
    ("fti.features.training_data", "time_split", "split"),
    ("fti.features.training_data", "rows_sha256", "hash"),
    ("fti.models.jobs.training_job", "save_dataset_version", "dataset_record"),
    ("fti.models.jobs.training_job", "_fit", "train"),
    ("fti.models.trainers.xgboost", "features_matrix", "matrix"),
    ("fti.models.jobs.training_job", "_evaluate", "evaluate"),
    ("fti.models.evaluation.assessment", "features_matrix", "matrix"),
    ("fti.models.jobs.training_job", "card_evidence", "card"),
    ("fti.models.evaluation.assessment", "feature_importance", "importance"),
    ("fti.models.evaluation.assessment", "build_card_assets", "plots"),
    ("fti.models.jobs.training_job", "write_model_card", "card"),
    ("fti.models.jobs.training_job", "_register", "register"),
    ("fti.models.jobs.training_job", "_announce", "register"),
)


def synthetic_tables(rows: int, seed: int = 7) -> tuple[pa.Table, pa.Table]:
    """``rows`` transactions 30 s apart and their labels 1-60 min later.

    Fraud is amount > 100 on channel 1 (online), with 3 % of the labels flipped.
    """
    rng = np.random.default_rng(seed)
    index = np.arange(rows, dtype=np.int64)
    ids = pc.cast(pa.array(index), pa.string())
    tx_ids = pc.binary_join_element_wise("tx-", ids, "")
    cards = pc.binary_join_element_wise("card-", pc.cast(pa.array(index % 997), pa.string()), "")
    values = {name: rng.normal(size=rows) for name in FEATURE_COLUMNS}
    values["amount"] = rng.lognormal(4.0, 1.0, rows)
    values["channel_code"] = rng.integers(0, 3, rows).astype(np.float64)
    fraud = (values["amount"] > 100) & (values["channel_code"] == 1)
    fraud ^= rng.random(rows) < 0.03
    times = T0_US + index * 30_000_000
    source = {
        "source_partition": pa.array(np.zeros(rows, dtype=np.int32)),
        "source_offset": pa.array(index),
        "source_topic_id": pa.nulls(rows, pa.string()),
    }
    features = pa.table(
        {"tx_id": tx_ids, "card_id": cards, "event_time": pa.array(times, _TS), **values,
         "source_topic": pa.array(["transactions"] * rows), **source},
        schema=FEATURES_SCHEMA,
    )
    delays = rng.integers(60, 3600, rows) * 1_000_000
    labels = pa.table(
        {"tx_id": tx_ids, "is_fraud": pa.array(fraud.astype(np.int8)),
         "event_time": pa.array(times + delays, _TS), "source_topic": pa.array(["labels"] * rows),
         **source},
        schema=LABELS_SCHEMA,
    )
    return features, labels


def fill_offline_store(offline_dir: Path, rows: int, seed: int = 7) -> None:
    """Write ``rows`` synthetic transactions and labels into a new offline LanceDB."""
    features, labels = synthetic_tables(rows, seed)
    db = lancedb.connect(str(offline_dir))
    db.create_table(FEATURES_TABLE, data=features, schema=FEATURES_SCHEMA)
    db.create_table(LABELS_TABLE, data=labels, schema=LABELS_SCHEMA)


class StepTimer:
    """Exclusive seconds per step name, and the last value each wrapped function returned."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.returned: dict[str, Any] = {}
        self._inner: list[float] = []

    def wrap(self, step: str, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` timed under ``step``; time spent in inner timed steps is not counted twice."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            self._inner.append(0.0)
            start = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                inner = self._inner.pop()
                self.seconds[step] = self.seconds.get(step, 0.0) + elapsed - inner
                if self._inner:
                    self._inner[-1] += elapsed
            self.returned[name] = result
            return result

        return timed


@contextmanager
def timed_steps(timer: StepTimer) -> Iterator[StepTimer]:
    """Time every function of `STEPS` while the body runs; restore them after."""
    originals = []
    for module_name, name, step in STEPS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if callable(getattr(module, name, None)):
            originals.append((module, name, step, getattr(module, name)))
    try:
        for module, name, step, fn in originals:
            setattr(module, name, timer.wrap(step, name, fn))
        yield timer
    finally:
        for module, name, _, fn in originals:
            setattr(module, name, fn)


def bare_train_s(split: Split, training: TrainingSettings, rounds: int) -> tuple[float, float]:
    """Wall and CPU seconds of ``xgboost.train`` (QuantileDMatrix, as XGBClassifier builds) for
    ``rounds`` rounds on ``split.train`` with the job's parameters; the numpy matrix is built
    before timing."""
    params = xgboost_params(split, training, "cpu", ModelInputs(FEATURE_COLUMNS, LABEL_COLUMN))
    booster_params = {
        k: v
        for k, v in params.items()
        if k not in ("n_estimators", "early_stopping_rounds", "n_jobs", "random_state")
    } | {"nthread": params["n_jobs"], "seed": params["random_state"]}
    X, y = features_matrix(split.train, FEATURE_COLUMNS), labels_vector(split.train, LABEL_COLUMN)
    start, cpu = time.perf_counter(), time.process_time()
    train = xgb.QuantileDMatrix(X, y, nthread=params["n_jobs"])
    xgb.train(booster_params, train, num_boost_round=rounds)
    return time.perf_counter() - start, time.process_time() - cpu


def main(
    rows: int = 200_000, seed: int = 7, repeat: int = 3, n_estimators: int = 200
) -> dict[str, Any]:
    """Fill a temporary offline store, run the job once (timed per step), then bare
    xgboost.train ``repeat`` times (median; it is cheap next to the job)."""
    with tempfile.TemporaryDirectory(prefix="fti-bench-train-") as tmp:
        training = TrainingSettings(
            device="cpu", window_labels=0, seed=seed, n_estimators=n_estimators
        )
        settings = Settings(data_dir=Path(tmp), training=training)
        fill_offline_store(settings.offline_dir, rows, seed)
        with timed_steps(StepTimer()) as timer:
            start, cpu = time.perf_counter(), time.process_time()
            result = training_job.run_training_job(settings, reason="manual")
            job_s, job_cpu_s = time.perf_counter() - start, time.process_time() - cpu
        params = ModelRegistry(settings.registry_location).get(result.model, result.version).params
        rounds = max(len(values) for values in params["history"].values())
        split: Split = timer.returned["time_split"]
        bare = [bare_train_s(split, training, rounds) for _ in range(max(1, repeat))]
    bare_s, bare_cpu_s = (float(np.median([b[i] for b in bare])) for i in (0, 1))
    breakdown = {step: round(s, 3) for step, s in sorted(timer.seconds.items())}
    breakdown["other"] = round(job_s - sum(timer.seconds.values()), 3)
    return {
        "rows": rows,
        "train_rows": split.train.num_rows,
        "rounds": rounds,
        "trees": params["trees"],
        "test_auc": round(result.metrics["roc_auc"], 4),
        "job_s": round(job_s, 3),
        "bare_s": round(bare_s, 3),
        "overhead": round(job_s / bare_s, 3),
        "goal": GOAL,
        "train_vs_bare": round(timer.seconds["train"] / bare_s, 3),
        "job_cpu_s": round(job_cpu_s, 3),
        "bare_cpu_s": round(bare_cpu_s, 3),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "breakdown_s": breakdown,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="transactions (= labels)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="bare runs (median)")
    parser.add_argument("--n-estimators", type=int, default=200, help="most boosting rounds")
    args = parser.parse_args()
    print(json.dumps(main(args.rows, args.seed, args.repeat, args.n_estimators)))
