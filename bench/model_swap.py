"""Model swap and single-row scoring of every built-in kind: what a hot swap costs and what one
prediction costs.

For each kind (``--kinds``, default xgboost, mlp and lora) a small model is fitted by its real
trainer (`trainer_for(kind).fit`) and registered with the signature a training job writes, in
a temporary registry. `load_ms_*`: `load_serving_model` (sha256 check of every artifact file,
the trainer's load, one warm-up prediction), median and p99 over ``--loads`` loads
(``--lora-loads`` for lora); `sha256_ms`, `parse_ms` and `warmup_ms` split its median into those
three parts (timed separately; lora's parse includes the sha256 check of its base encoder's
weights, `base_sha256_ms`). `score_us_*`: ``ServingModel.score`` on one row, warm, over
``--predicts`` calls (``--lora-predicts``), against the bare limit on the same row, the calls
taking turns: xgboost ``booster.inplace_predict``; mlp the torch module's forward on the
standardized 1-row tensor under ``torch.inference_mode()``; lora the scorer's forward on the
pair already tokenised. `overhead_p99` = score p99 / bare p99.

LoRA adapts the bundled MiniLM (a few training steps: the load and the forward pass cost the
same as a fully trained adapter's); its pairs are synthetic texts of about the length of the
preference example's (`tokens`: the padded length of the scored pair). The top-level keys are
XGBoost's (as before, with a 1-thread bare limit too); `kinds` holds every kind's figures.
Prints one JSON line. Usage: fti bench model-swap --loads 200 --predicts 10000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from fti.features.dataset_records import Split
from fti.models.registry import ModelRegistry, Signature
from fti.models.serving import ServingModel, load_serving_model
from fti.models.trainers import FitResult, ModelInputs, load_artifacts, trainer_for
from fti.models.trainers.base import SIGNATURE_FILE, TEXT_INPUT, artifact_dir, read_signature

KINDS = ("xgboost", "mlp", "lora")
#: Input columns of the tabular models (as many as a small tabular model reads).
FEATURE_COLUMNS = tuple(f"x{i:02d}" for i in range(12))
TEXT_COLUMNS = ("prompt", "response_a", "response_b")
LABEL = "label"
CARD_FILE = "model_card.md"
#: Quick hyperparameters of the MLP (its load and forward cost depend on the layers only).
MLP_PARAMS = {"hidden_sizes": [64, 32], "epochs": 3, "batch_size": 256, "patience": 2}
#: A few LoRA steps on the bundled MiniLM: a real adapter on the real encoder.
LORA_PARAMS = {"steps": 4, "batch_size": 8, "warmup_steps": 1}
#: Words of the synthetic pairs.
WORDS = ("the", "water", "plan", "minutes", "list", "easy", "every", "week", "keep", "soil",
         "pasta", "sleep", "run", "cool", "dry", "pot", "bed", "day", "hope", "helps", "thanks",
         "use", "copy", "time", "salt", "shoes", "pace", "rest", "legs", "dark", "quiet")


@dataclass(frozen=True)
class Registered:
    """A kind's model in the registry and the row its single-row scores are timed on."""

    kind: str
    name: str
    version: int
    row: np.ndarray


def _tabular_table(rng: np.random.Generator, rows: int) -> pa.Table:
    """Rows of `FEATURE_COLUMNS` with a learnable binary label."""
    X = rng.normal(size=(rows, len(FEATURE_COLUMNS))).astype(np.float32)
    y = (X[:, 0] + X[:, 5] + rng.normal(0, 0.5, rows) > 1.5).astype(np.int8)
    return pa.table({**{c: X[:, i] for i, c in enumerate(FEATURE_COLUMNS)}, LABEL: y})


def _sentence(rng: np.random.Generator, words: int) -> str:
    return " ".join(rng.choice(WORDS, words)).capitalize() + "."


def _pair_table(rng: np.random.Generator, pairs: int) -> pa.Table:
    """Prompts of ~10 words and two responses of ~30 words each (the preference example's
    length), the three outcomes in turn."""
    rows = [(_sentence(rng, 10), _sentence(rng, 30), _sentence(rng, 30)) for _ in range(pairs)]
    columns = {c: [r[i] for r in rows] for i, c in enumerate(TEXT_COLUMNS)}
    return pa.table({**columns, LABEL: [("A", "B", "tie")[i % 3] for i in range(pairs)]})


def _training_data(kind: str, rows: int, seed: int) -> tuple[Split, ModelInputs]:
    """A small split and the inputs a model of ``kind`` is fitted on."""
    rng = np.random.default_rng(seed)
    if kind == "lora":
        parts = (_pair_table(rng, n) for n in (12, 3, 3))
        return Split(*parts), ModelInputs(TEXT_COLUMNS, LABEL, "preference")
    parts = (_tabular_table(rng, n) for n in (rows * 8 // 10, rows // 10, rows // 10))
    return Split(*parts), ModelInputs(FEATURE_COLUMNS, LABEL, "binary")


def _params(kind: str, trees: int, depth: int) -> dict[str, Any]:
    if kind == "xgboost":
        return {"n_estimators": trees, "max_depth": depth}
    return dict(MLP_PARAMS if kind == "mlp" else LORA_PARAMS)


def register(registry: ModelRegistry, name: str, kind: str, inputs: ModelInputs,
             fitted: FitResult) -> int:
    """Register ``fitted``'s files as a promoted version of ``name`` with the params and
    signature a training job records (`model_job._register`); its version."""
    params = fitted.params | {"trainer": kind, "task": inputs.task,
                              "feature_columns": list(inputs.features)}
    dtype = "string" if kind == "lora" else "float32"
    signature = Signature.of(inputs.features, dtype, output=(f"{inputs.task}_output", "float32"))
    with tempfile.TemporaryDirectory(prefix="fti-bench-stage-") as staging:
        for file in fitted.files:
            shutil.copyfile(file, Path(staging) / Path(file).name)
        (Path(staging) / CARD_FILE).write_text(f"# benchmark {kind} model\n")
        version = registry.register(
            name, Path(staging), gates={"passed": True, "reasons": []}, promoted=True,
            card=CARD_FILE, params={k: v for k, v in params.items() if k != "history"},
            signature=signature, device="cpu")
    return version.version


def fit_and_register(registry: ModelRegistry, kind: str, workdir: Path, trees: int,
                     depth: int, rows: int = 20_000, seed: int = 7) -> Registered:
    """Fit a small model of ``kind`` with its trainer and register it; with a held-out row."""
    split, inputs = _training_data(kind, rows, seed)
    trainer = trainer_for(kind, inputs, _params(kind, trees, depth))
    fitted = trainer.fit(split, inputs, "cpu", workdir / kind)
    name = f"bench-{kind}"
    version = register(registry, name, kind, inputs, fitted)
    row = inputs.matrix(split.test.slice(0, 1)) if kind != "lora" else np.array(
        [[split.test[c][0].as_py() for c in TEXT_COLUMNS]], dtype=object)
    return Registered(kind, name, version, row)


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


def _load_parts(registry: ModelRegistry, name: str, version: int) -> tuple[float, ...]:
    """Seconds of the sha256 check, parse and warm-up of one load done by hand (as
    `load_version` and `load_serving_model` do it), then of one whole `load_serving_model`
    (the two take turns)."""
    start = time.perf_counter()
    signature_path = registry.artifact_path(name, version, SIGNATURE_FILE)
    signature = read_signature(signature_path.parent)
    paths = [registry.artifact_path(name, version, file) for file in signature.files]
    checked = time.perf_counter()
    loaded = load_artifacts(artifact_dir([signature_path, *paths]), signature.kind)
    model = ServingModel(name, version, signature.kind, signature.task, signature.features,
                         signature.classes, loaded, signature.extra.get("input") == TEXT_INPUT)
    parsed = time.perf_counter()
    model.warm_up()
    warmed = time.perf_counter()
    swapped = load_serving_model(registry, name, version)
    done = time.perf_counter()
    del model, loaded, swapped  # freed outside the timed spans
    return checked - start, parsed - checked, warmed - parsed, done - warmed


def _bare_calls(model: ServingModel, row: np.ndarray) -> dict[str, Callable[[], Any]]:
    """The limit of one row's score for the model's kind, by name (``bare`` first)."""
    import torch  # only here: an XGBoost-only run does not pay for importing torch

    loaded: Any = model.model
    if model.kind == "xgboost":
        single = loaded.booster.copy()
        single.set_param({"nthread": 1})
        return {"bare": lambda: loaded.booster.inplace_predict(row),
                "bare_1thread": lambda: single.inplace_predict(row)}
    if model.kind == "mlp":
        tensor = torch.from_numpy(loaded.standardizer.transform(row))
        return {"bare": lambda: _forward(loaded.network, tensor)}
    from fti.models.trainers.lora.text import encode, pair_texts

    batch = encode(loaded.tokenizer, pair_texts(row))
    return {"bare": lambda: _forward(loaded.scorer, batch)}


def _forward(module: Any, batch: Any) -> Any:
    """``module(batch)`` under ``torch.inference_mode()``."""
    import torch

    with torch.inference_mode():
        return module(batch)


def _ms(values: np.ndarray, q: float) -> float:
    return round(float(np.percentile(values, q)) * 1e3, 3)


def _us(values: np.ndarray, q: float) -> float:
    return round(float(np.percentile(values, q)) * 1e6, 1)


def _artifact_bytes(registry: ModelRegistry, name: str, version: int) -> int:
    """Bytes of the files a load reads (without the model card)."""
    files = registry.get(name, version).files
    return sum(registry.artifact_path(name, version, f).stat().st_size
               for f in files if f != CARD_FILE)


def _lora_extras(model: ServingModel, row: np.ndarray) -> dict[str, Any]:
    """The base encoder's weights (bytes, one sha256 check's time) and the padded token
    length of the pair in ``row`` as the scorer reads it."""
    from fti.models.trainers.lora.base_model import base_model_path, weights_sha256
    from fti.models.trainers.lora.text import encode, pair_texts

    base = base_model_path(model.model.params.base_model)
    start = time.perf_counter()
    weights_sha256(base)
    seconds = time.perf_counter() - start
    tokens = encode(model.model.tokenizer, pair_texts(row)).input_ids.shape[1]
    return {"base_model_bytes": sum(p.stat().st_size for p in base.glob("*.safetensors")),
            "base_sha256_ms": round(seconds * 1e3, 3), "tokens": int(tokens)}


def measure(registry: ModelRegistry, model: Registered, loads: int,
            predicts: int) -> dict[str, Any]:
    """Load and single-row score figures of one registered model."""
    parts = np.array([_load_parts(registry, model.name, model.version) for _ in range(loads)])
    served = load_serving_model(registry, model.name, model.version)
    bare = _bare_calls(served, model.row)
    calls = [lambda: served.score(model.row), *bare.values()]
    interleaved(calls, min(100, predicts))  # warm every path before timing
    timed = interleaved(calls, predicts).T
    out: dict[str, Any] = {
        "model_bytes": _artifact_bytes(registry, model.name, model.version),
        "loads": loads,
        "load_ms_p50": _ms(parts[:, 3], 50),
        "load_ms_p99": _ms(parts[:, 3], 99),
        "sha256_ms": _ms(parts[:, 0], 50),
        "parse_ms": _ms(parts[:, 1], 50),
        "warmup_ms": _ms(parts[:, 2], 50),
        "predicts": predicts,
        "score_us_p50": _us(timed[0], 50),
        "score_us_p99": _us(timed[0], 99),
    }
    for label, values in zip(bare, timed[1:], strict=True):
        out |= {f"{label}_us_p50": _us(values, 50), f"{label}_us_p99": _us(values, 99)}
    out["overhead_p99"] = round(float(np.percentile(timed[0], 99) / np.percentile(timed[1], 99)),
                                3)
    if model.kind == "xgboost":
        out |= {"trees": served.model.booster.num_boosted_rounds()}
    if model.kind == "lora":
        out |= _lora_extras(served, model.row)
    return out


def main(loads: int = 200, predicts: int = 10_000, trees: int = 200, depth: int = 4,
         kinds: Sequence[str] = KINDS, lora_loads: int = 20,
         lora_predicts: int = 300) -> dict[str, Any]:
    """Fit and register one model of each of ``kinds`` in a temporary registry, then time
    its loads and its single-row scores; XGBoost's figures also at the top level."""
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise SystemExit(f"--kinds: unknown {unknown}; built-in kinds: {', '.join(KINDS)}")
    figures: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="fti-bench-swap-") as tmp:
        registry = ModelRegistry(Path(tmp) / "registry")
        for kind in KINDS:  # in this order whatever the order asked for
            if kind not in kinds:
                continue
            model = fit_and_register(registry, kind, Path(tmp) / "fit", trees, depth)
            counts = (lora_loads, lora_predicts) if kind == "lora" else (loads, predicts)
            figures[kind] = measure(registry, model, *counts)
    top: dict[str, Any] = {"omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default")}
    if "xgboost" in figures:
        top |= figures["xgboost"] | {"depth": depth}
    return top | {"kinds": figures}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help="comma-separated kinds to measure (default: all built-in)")
    parser.add_argument("--loads", type=int, default=200, help="loads to time (median, p99)")
    parser.add_argument("--predicts", type=int, default=10_000, help="single-row predictions")
    parser.add_argument("--lora-loads", type=int, default=20,
                        help="loads of the lora model (each loads the MiniLM: ~1 s)")
    parser.add_argument("--lora-predicts", type=int, default=300,
                        help="single-row predictions of the lora model")
    parser.add_argument("--trees", type=int, default=200,
                        help="most trees of the xgboost model (early stopping may keep fewer)")
    parser.add_argument("--depth", type=int, default=4)
    args = parser.parse_args()
    print(json.dumps(main(args.loads, args.predicts, args.trees, args.depth,
                          [k.strip() for k in args.kinds.split(",") if k.strip()],
                          args.lora_loads, args.lora_predicts)))
