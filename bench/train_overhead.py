"""Training-job overhead: a declared model's training job against bare ``xgboost.train``.

`job_s`: `run_model_job` (what `fti train` runs) on an XGBoost model of the project
(`--project DIR`, `--model NAME`, default its first served model), on a fresh offline store
holding ``--rows`` synthetic rows of each of its view's offline tables (the groups' and the
label's, with their declared schemas; numbers drawn at random, the label learnable from the
first two numeric features) and as many label rows: read, point-in-time join, split, dataset
hashes and record, fit (early stopping), evaluate on the test split, model_card.md,
register and announce: the job's critical path, after which the version serves. `report_s`:
the plots drawn after that and attached as the version's report (`job_with_report_s`: both).
`bare_s`: ``xgboost.train`` on the same train matrix (already in numpy), with the parameters
the job's trainer used and as many rounds as it trained (early stopping included), no eval
set. `overhead` = job_s / bare_s (goal <= 1.3); `train_vs_bare` = the job's fit step / bare_s.
`breakdown_s` times each step of the same job run (exclusive seconds: a step's inner steps
are counted once, under their own name; "matrix" is Arrow -> numpy). CPU seconds and
``OMP_WAIT_POLICY`` are reported too: on a loaded machine OpenMP's default spin-waiting makes
XGBoost's two threads many times slower, and ``OMP_WAIT_POLICY=PASSIVE`` (set by `fti`
before the process starts) removes most of that.
Prints one JSON line. Usage: fti bench train-overhead --project DIR --rows 1000000
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
from dataclasses import replace
from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
import xgboost as xgb

from fti.bench.projects import add_model_option, add_project_option, open_project
from fti.features.dataset_records import Split
from fti.features.project.declare import FeatureView
from fti.features.project.model import Model
from fti.features.project.tables import EVENT_TIME, group_schema, label_schema, label_table
from fti.models.devices import xgboost_device
from fti.models.trainers.base import ModelInputs
from fti.models.trainers.xgboost import XGBoostTrainer
from fti.models.trainers.xgboost_model import features_matrix, target_vector, xgboost_params
from fti.settings import Settings, TrainingSettings

GOAL = 1.3
T0_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
ENTITIES = 997
#: (module, function or Class.method, step) timed during the job; inner steps are subtracted
#: from outer ones. What a module does not have (the job changes) is skipped; its time lands
#: in "other".
STEPS: tuple[tuple[str, str, str], ...] = (
    ("fti.models.jobs.model_job", "select_device", "device"),
    ("fti.models.jobs.model_job", "describe_device", "device"),
    ("fti.models.jobs.model_job", "build_model_dataset", "dataset"),
    ("fti.features.project.training", "_read", "read"),
    ("fti.features.project.training", "view_training_table", "join"),
    ("fti.features.project.datasets", "model_table", "join"),
    ("fti.features.project.datasets", "time_split", "split"),
    ("fti.features.project.datasets", "rows_sha256", "hash"),
    ("fti.models.jobs.model_job", "check_trainable", "split"),
    ("fti.models.jobs.model_job", "save_dataset_version", "dataset_record"),
    ("fti.models.jobs.model_job", "trainer_for", "train"),
    ("fti.models.trainers.xgboost", "XGBoostTrainer.fit", "train"),
    ("fti.models.trainers.xgboost", "features_matrix", "matrix"),
    ("fti.models.trainers.xgboost", "target_vector", "matrix"),
    ("fti.models.jobs.model_job", "load_artifacts", "evaluate"),
    ("fti.models.jobs.model_job", "table_inputs", "matrix"),
    ("fti.models.trainers.xgboost", "LoadedXGBoost.predict", "evaluate"),
    ("fti.models.jobs.model_job", "evaluate_task", "evaluate"),
    ("fti.models.jobs.model_job", "_champion_on", "evaluate"),
    ("fti.models.jobs.model_job", "check_task_gates", "evaluate"),
    ("fti.models.jobs.model_job", "write_task_card", "model_card"),
    ("fti.models.evaluation.model_card", "build_card_assets", "plots"),
    ("fti.models.jobs.model_job", "_register", "register"),
    ("fti.models.jobs.model_job", "announce", "register"),
    ("fti.models.jobs.model_job", "_attach_report", "report"),
)
_TS = pa.timestamp("us", tz="UTC")


def _values(kind: pa.DataType, rows: int, rng: np.random.Generator,
            times: np.ndarray) -> pa.Array:
    """Random values of an Arrow type (times: `times`)."""
    if pa.types.is_floating(kind):
        return pa.array(rng.normal(size=rows), kind)
    if pa.types.is_integer(kind):
        return pa.array(rng.integers(0, 10, rows), kind)
    if pa.types.is_boolean(kind):
        return pa.array(rng.random(rows) < 0.5)
    if pa.types.is_timestamp(kind):
        return pa.array(times, _TS)
    return pa.array(np.array(["a", "b", "c"])[rng.integers(0, 3, rows)], kind)


def _keys(kind: pa.DataType, numbers: np.ndarray, prefix: str) -> pa.Array:
    """`numbers` as keys of an Arrow type: themselves, or `<prefix>-<n>` strings."""
    if pa.types.is_integer(kind):
        return pa.array(numbers, kind)
    return pa.array([f"{prefix}-{n}" for n in numbers.tolist()], kind)


def _source(rows: int, topic: str) -> dict[str, pa.Array]:
    return {"source_topic": pa.array([topic] * rows), "source_partition": pa.array(
        np.zeros(rows, dtype=np.int32)), "source_offset": pa.array(np.arange(rows)),
        "source_topic_id": pa.nulls(rows, pa.string())}


def _label_values(task: str, kind: pa.DataType, signal: np.ndarray) -> pa.Array:
    """The label of each row from a numeric `signal`: the top 10 % positive (binary), three
    classes by tercile (multiclass), the signal itself (regression)."""
    if task == "regression":
        return pa.array(signal, kind)
    if task == "binary":
        positive = signal > np.quantile(signal, 0.9)
        if pa.types.is_boolean(kind):
            return pa.array(positive)
        return pa.array(positive.astype(np.int64), kind)
    classes = np.digitize(signal, np.quantile(signal, [1 / 3, 2 / 3]))
    if pa.types.is_integer(kind):
        return pa.array(classes, kind)
    return pa.array(np.array(["low", "mid", "high"])[classes], kind)


def synthetic_tables(model: Model, rows: int, seed: int = 7) -> dict[str, tuple[pa.Table,
                                                                             pa.Schema]]:
    """Offline tables of the model's view, by name, with their schemas: ``rows`` events 30 s
    apart over ``ENTITIES`` entities in each group's table, and one label per event 1-60 min
    after it, learnable from the first two numeric features (plus noise)."""
    view: FeatureView = model.view
    rng = np.random.default_rng(seed)
    index = np.arange(rows, dtype=np.int64)
    times = T0_US + index * 30_000_000
    out: dict[str, tuple[pa.Table, pa.Schema]] = {}
    numeric: list[np.ndarray] = []
    keys: dict[str, pa.Array] = {}  # a label field a group joins on -> its values
    for group in view.groups:
        schema = group_schema(group)
        stream_id = group.stream.id
        columns: dict[str, pa.Array] = _source(rows, "bench")
        for f in schema:
            if f.name in columns:
                continue
            if f.name == group.entity:
                columns[f.name] = _keys(f.type, index % ENTITIES, "e")
            elif f.name == stream_id:
                columns[f.name] = _keys(f.type, index, "ev")
            elif f.name == EVENT_TIME:
                columns[f.name] = pa.array(times, _TS)
            else:
                columns[f.name] = _values(f.type, rows, rng, times)
                if pa.types.is_floating(f.type) or pa.types.is_integer(f.type):
                    numeric.append(columns[f.name].to_numpy(zero_copy_only=False))
        join = view.join_key(group)
        if join is not None:
            keys[join] = columns[join]
        out[group.table_name] = (pa.table(columns, schema=schema), schema)
    signal = sum(numeric[:2], np.zeros(rows)) + rng.normal(scale=0.5, size=rows)
    label = view.label
    schema = label_schema(label)
    label_times = times + rng.integers(60, 3600, rows) * 1_000_000
    columns = _source(rows, "bench-labels")
    for f in schema:
        if f.name in columns:
            continue
        if f.name in keys:
            columns[f.name] = keys[f.name]
        elif f.name == label.value:
            columns[f.name] = _label_values(model.task, f.type, signal)
        elif f.name == EVENT_TIME:
            columns[f.name] = pa.array(label_times, _TS)
        else:
            columns[f.name] = _values(f.type, rows, rng, label_times)
    out[label_table(label)] = (pa.table(columns, schema=schema), schema)
    return out


def fill_offline_store(settings: Settings, model: Model, rows: int, seed: int = 7) -> None:
    """Write the view's synthetic tables into a new offline LanceDB."""
    db = lancedb.connect(str(settings.offline_location))
    for name, (table, schema) in synthetic_tables(model, rows, seed).items():
        db.create_table(name, data=table, schema=schema)


class StepTimer:
    """Exclusive seconds per step name, and the last arguments and value of each wrapped
    function."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.returned: dict[str, Any] = {}
        self.called: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}
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
            self.called[name] = (args, kwargs)
            self.returned[name] = result
            return result

        return timed


@contextmanager
def timed_steps(timer: StepTimer) -> Iterator[StepTimer]:
    """Time every function of `STEPS` while the body runs; restore them after."""
    originals = []
    for module_name, path, step in STEPS:
        try:
            owner: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        *classes, name = path.split(".")
        for cls in classes:
            owner = getattr(owner, cls, None)
        if owner is not None and callable(getattr(owner, name, None)):
            fn = vars(owner).get(name) or getattr(owner, name)
            originals.append((owner, name, path, step, fn))
    try:
        for owner, name, path, step, fn in originals:
            setattr(owner, name, timer.wrap(step, path, fn))
        yield timer
    finally:
        for owner, name, _, _, fn in originals:
            setattr(owner, name, fn)


def bare_train_s(trainer: XGBoostTrainer, split: Split, inputs: ModelInputs, device: str,
                 rounds: int) -> tuple[float, float]:
    """Wall and CPU seconds of ``xgboost.train`` (QuantileDMatrix, as XGBClassifier builds)
    for ``rounds`` rounds on ``split.train`` with the parameters the job's trainer used; the
    numpy matrix is built before timing."""
    inputs = inputs.with_classes(split)
    params = xgboost_params(split, trainer.settings, xgboost_device(device), inputs)
    params |= trainer.booster
    booster_params = {
        k: v
        for k, v in params.items()
        if k not in ("n_estimators", "early_stopping_rounds", "n_jobs", "random_state")
    } | {"nthread": params["n_jobs"], "seed": params["random_state"]}
    if inputs.task == "multiclass":
        booster_params["num_class"] = len(inputs.classes or ())
    X, y = features_matrix(split.train, inputs.features), target_vector(split.train, inputs)
    start, cpu = time.perf_counter(), time.process_time()
    train = xgb.QuantileDMatrix(X, y, nthread=params["n_jobs"])
    xgb.train(booster_params, train, num_boost_round=rounds)
    return time.perf_counter() - start, time.process_time() - cpu


def main(project_dir: Path | None, rows: int = 200_000, model_name: str | None = None,
         seed: int = 7, repeat: int = 3, n_estimators: int | None = None) -> dict[str, Any]:
    """Fill a temporary offline store, run the model's job once (timed per step), then bare
    xgboost.train ``repeat`` times (median; it is cheap next to the job)."""
    bench = open_project(project_dir)
    model = bench.model(model_name)
    if model.trainer_kind() != "xgboost":
        raise SystemExit(f"model {model.name} is trained by {model.trainer_kind()!r}; this "
                         "benchmark compares with bare xgboost.train: pass --model of an "
                         "xgboost model")
    if n_estimators is not None:
        model = replace(model, params={**model.params, "n_estimators": n_estimators})
    project = replace(bench.project, models={**bench.project.models, model.name: model})
    from fti.models.jobs.model_job import run_model_job

    with tempfile.TemporaryDirectory(prefix="fti-bench-train-") as tmp:
        training = TrainingSettings(device="cpu", window_labels=0, seed=seed)
        settings = Settings(data_dir=Path(tmp), training=training)
        fill_offline_store(settings, model, rows, seed)
        with timed_steps(StepTimer()) as timer:
            start, cpu = time.perf_counter(), time.process_time()
            result = run_model_job(settings, project, model.name)
            job_s, job_cpu_s = time.perf_counter() - start, time.process_time() - cpu
        (trainer, split, inputs, device, *_), _ = timer.called["XGBoostTrainer.fit"]
        fitted = timer.returned["XGBoostTrainer.fit"]
        rounds = max(len(values) for values in fitted.history.values())
        bare = [bare_train_s(trainer, split, inputs, device, rounds)
                for _ in range(max(1, repeat))]
    bare_s, bare_cpu_s = (float(np.median([b[i] for b in bare])) for i in (0, 1))
    breakdown = {step: round(s, 3) for step, s in sorted(timer.seconds.items())}
    breakdown["other"] = round(job_s - sum(timer.seconds.values()), 3)
    # The version is registered, promoted and announced before its report (plots) is drawn:
    # the job's critical path ends there.
    # The step times are exclusive: the report's plots are timed as "plots".
    report_s = timer.seconds.get("report", 0.0) + timer.seconds.get("plots", 0.0)
    total_s, job_s = job_s, job_s - report_s
    metric = model.primary_metric()
    return {
        "model": model.name,
        "rows": rows,
        "train_rows": split.train.num_rows,
        "rounds": rounds,
        "trees": fitted.params["trees"],
        "test_metric": metric,
        "test_value": round(float(result.metrics[metric]), 4),
        "job_s": round(job_s, 3),
        "report_s": round(report_s, 3),
        "job_with_report_s": round(total_s, 3),
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
    add_project_option(parser)
    add_model_option(parser)
    parser.add_argument("--rows", type=int, default=200_000,
                        help="rows of each offline table of the view (= labels)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="bare runs (median)")
    parser.add_argument("--n-estimators", type=int, default=None,
                        help="most boosting rounds (default: the model's own)")
    args = parser.parse_args()
    print(json.dumps(main(args.project, args.rows, args.model, args.seed, args.repeat,
                          args.n_estimators)))
