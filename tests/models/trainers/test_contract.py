"""The trainer contract, kept by every trainer and task: XGBoost and the MLP (binary,
multiclass, regression), LoRA (pairwise preference, text features; on a tiny encoder) and a
user's own trainer written here (binary logistic regression by numpy gradient descent, saved
as JSON), imported back as ``module:Class``.

Each case fits once on a small synthetic split with a learnable signal; the tests check that
it beats a trivial baseline, writes only safe formats with a signature describing its inputs,
reloads to the same predictions, refuses a matrix of the wrong width, and serves through a
real `ModelRegistry` with decisions of its task.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from fti.errors import ConfigError, FtiError
from fti.features.dataset_records import Split
from fti.models.errors import TrainerError
from fti.models.evaluation.metrics import evaluate
from fti.models.registry import CHAMPION, ModelRegistry
from fti.models.serving import ChampionHolder, load_serving_model
from fti.models.trainers import (
    FitResult,
    ModelInputs,
    kind_of,
    load_artifacts,
    load_version,
    read_signature,
    table_inputs,
    trainer_for,
    write_signature,
)
from fti.models.trainers.base import SAFE_SUFFIXES, SIGNATURE_FILE
from fti.models.trainers.xgboost_model import MODEL_FILE
from tests.models.trainers.lora_support import TEXT_COLUMNS, TINY_PARAMS, pair_split, tiny_encoder

FEATURES = ("signal_a", "signal_b", "noise", "sparse")
CLASSES = ("high", "low", "mid")  # sorted: the order a trainer gives them
OUTCOMES = ("A", "B", "tie")
CUSTOM = f"{__name__}:LogisticTrainer"
#: Small and quick hyperparameters per trainer.
PARAMS: dict[str, dict[str, Any]] = {
    "xgboost": {"n_estimators": 40, "max_depth": 3, "learning_rate": 0.3},
    "mlp": {"hidden_sizes": [16], "epochs": 25, "batch_size": 64, "patience": 5, "lr": 0.02},
    CUSTOM: {"steps": 300},
}
CASES = [
    ("xgboost", "binary"), ("xgboost", "multiclass"), ("xgboost", "regression"),
    ("mlp", "binary"), ("mlp", "multiclass"), ("mlp", "regression"),
    (CUSTOM, "binary"),
]
_PICKLE_PROTOCOLS = {2, 3, 4, 5}


# -- a user's trainer, as a user would write it --------------------------------------------


class LogisticModel:
    """Logistic regression from JSON coefficients; scores standardized rows."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.coef = np.asarray(document["coef"])
        self.intercept = float(document["intercept"])
        self.mean, self.std = np.asarray(document["mean"]), np.asarray(document["std"])

    def predict(self, X: np.ndarray) -> np.ndarray:
        z = np.nan_to_num((np.asarray(X, dtype=np.float64) - self.mean) / self.std)
        return (1.0 / (1.0 + np.exp(-(z @ self.coef + self.intercept)))).astype(np.float32)


class LogisticTrainer:
    """Binary logistic regression fitted by full-batch gradient descent; JSON on disk."""

    kind = "logistic"
    tasks = ("binary",)

    def __init__(self, steps: int = 200, lr: float = 0.5) -> None:
        self.steps, self.lr = steps, lr

    def fit(self, split: Split, inputs: ModelInputs, device: str, workdir: Path,
            progress: Any = None) -> FitResult:
        X, y = inputs.matrix(split.train).astype(np.float64), inputs.target(split.train)
        mean, std = np.nanmean(X, axis=0), np.nanstd(X, axis=0) + 1e-9
        z = np.nan_to_num((X - mean) / std)
        coef, intercept = np.zeros(z.shape[1]), 0.0
        for _ in range(self.steps):
            p = 1.0 / (1.0 + np.exp(-(z @ coef + intercept)))
            coef -= self.lr * z.T @ (p - y) / len(y)
            intercept -= self.lr * float(np.mean(p - y))
        path = Path(workdir) / "logistic.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"coef": coef.tolist(), "intercept": intercept,
                                    "mean": mean.tolist(), "std": std.tolist()}))
        signature = write_signature(workdir, self, inputs, [path])
        return FitResult([str(path), str(signature)], {}, {"device": "cpu", "steps": self.steps})

    def load(self, path_dir: Path) -> LogisticModel:
        return LogisticModel(json.loads((Path(path_dir) / "logistic.json").read_text()))


# -- data ------------------------------------------------------------------------------------


def _part(rng: np.random.Generator, n: int, task: str) -> pa.Table:
    a, b = rng.normal(size=n), rng.normal(size=n)
    sparse = rng.normal(size=n)
    sparse[::7] = np.nan  # missing values must not break any trainer
    columns = {"signal_a": a, "signal_b": b, "noise": rng.normal(size=n), "sparse": sparse}
    signal = 2.0 * a - b
    if task == "binary":
        label: Any = (signal + rng.normal(0, 0.5, n) > 0.3).astype(np.int8)
    elif task == "multiclass":
        noisy = signal + rng.normal(0, 0.3, n)
        label = np.where(noisy < -1.0, "low", np.where(noisy < 1.0, "mid", "high"))
    else:  # a target far from N(0, 1): the MLP must standardize and scale it back
        label = 50.0 * signal + 200.0 + rng.normal(0, 5.0, n)
    return pa.table({**columns, "target": label})


def _split(task: str, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    return Split(_part(rng, 800, task), _part(rng, 250, task), _part(rng, 400, task))


@dataclass(frozen=True)
class Fitted:
    """One trainer fitted on one task, with its test predictions."""

    kind: str
    task: str
    inputs: ModelInputs
    split: Split
    result: FitResult
    workdir: Path
    predictions: np.ndarray


@pytest.fixture(scope="module", params=CASES, ids=[f"{k.split(':')[-1]}-{t}" for k, t in CASES])
def fitted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Fitted:
    kind, task = request.param
    inputs = ModelInputs(FEATURES, "target", task)
    split = _split(task)
    trainer = trainer_for(kind, inputs, PARAMS[kind])
    workdir = tmp_path_factory.mktemp(f"{task}-fit")
    result = trainer.fit(split, inputs, "cpu", workdir)
    predictions = trainer.load(workdir).predict(inputs.matrix(split.test))
    return Fitted(kind, task, inputs, split, result, workdir, predictions)


# -- the contract ------------------------------------------------------------------------------


def test_fit_learns_more_than_a_trivial_baseline(fitted: Fitted) -> None:
    y = fitted.inputs.target(fitted.split.test)
    classes = CLASSES if fitted.task == "multiclass" else None
    metrics = evaluate(fitted.task, y, fitted.predictions, 0.5, classes)
    if fitted.task == "binary":
        assert metrics["roc_auc"] > 0.85
    elif fitted.task == "multiclass":
        majority = max(np.mean(y == c) for c in CLASSES)
        assert metrics["accuracy"] > majority + 0.2 and metrics["macro_f1"] > 0.6
    else:
        train_mean = float(np.mean(fitted.inputs.target(fitted.split.train)))
        assert metrics["mae"] < 0.3 * float(np.mean(np.abs(y - train_mean)))
        assert metrics["r2"] > 0.8


def test_predictions_have_the_shape_of_the_task(fitted: Fitted) -> None:
    p, rows = fitted.predictions, fitted.split.test.num_rows
    if fitted.task == "binary":
        assert p.shape == (rows,) and ((p >= 0) & (p <= 1)).all()
    elif fitted.task == "multiclass":
        assert p.shape == (rows, len(CLASSES))
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    else:
        assert p.shape == (rows,) and 150 < float(np.mean(p)) < 250  # in the target's unit


def _pickle_like(data: bytes) -> bool:
    """A pickle stream starts with PROTO (0x80) and a protocol number; torch.save is a zip."""
    return (len(data) > 1 and data[0] == 0x80 and data[1] in _PICKLE_PROTOCOLS) or (
        data[:4] == b"PK\x03\x04")


def test_every_file_is_in_a_safe_format(fitted: Fitted) -> None:
    written = [p for p in fitted.workdir.rglob("*") if p.is_file()]  # checkpoints too
    assert written and all(p.suffix in SAFE_SUFFIXES for p in written), written
    for path in written:
        data = path.read_bytes()
        if path.suffix == ".json":
            json.loads(data)
        elif path.suffix == ".ubj":
            assert data[:1] == b"{"
        else:  # safetensors: an 8-byte little-endian header length, then a JSON header
            header = int.from_bytes(data[:8], "little")
            assert json.loads(data[8:8 + header])
            continue
        assert not _pickle_like(data), path
    assert {Path(f).parent for f in fitted.result.files} == {fitted.workdir}


def test_the_signature_describes_the_inputs(fitted: Fitted) -> None:
    names = {Path(f).name for f in fitted.result.files}
    assert SIGNATURE_FILE in names
    signature = read_signature(fitted.workdir)
    assert signature.kind == (kind_of(LogisticTrainer) if fitted.kind == CUSTOM else fitted.kind)
    assert (signature.task, signature.features, signature.inputs.label) == (
        fitted.task, FEATURES, "target")
    assert signature.classes == (CLASSES if fitted.task == "multiclass" else None)
    assert set(signature.files) == names - {SIGNATURE_FILE}
    document = json.loads((fitted.workdir / SIGNATURE_FILE).read_text())
    assert {"kind", "task", "features", "label", "classes", "output", "files"} <= set(document)


def test_saved_model_reloads_to_the_same_predictions(fitted: Fitted, tmp_path: Path) -> None:
    for file in fitted.result.files:  # only the registered files, elsewhere
        shutil.copy(file, tmp_path / Path(file).name)
    loaded = load_artifacts(tmp_path)  # the kind comes from signature.json
    X = fitted.inputs.matrix(fitted.split.test)
    np.testing.assert_array_equal(loaded.predict(X), fitted.predictions)
    assert loaded.predict(X[:0]).shape[0] == 0


def test_a_matrix_of_the_wrong_width_names_the_columns(fitted: Fitted) -> None:
    loaded = load_artifacts(fitted.workdir)
    X = fitted.inputs.matrix(fitted.split.test)
    with pytest.raises(TrainerError, match=r"4 columns \['signal_a', 'signal_b', 'noise', "):
        loaded.predict(X[:, :3])
    with pytest.raises(TrainerError, match="sparse"):
        loaded.predict(np.hstack([X, X[:, :1]]))


# -- user trainers -------------------------------------------------------------------------------


def test_a_user_trainer_is_imported_by_module_and_class() -> None:
    inputs = ModelInputs(FEATURES, "target", "binary")
    trainer = trainer_for(CUSTOM, inputs, {"steps": 5})
    assert isinstance(trainer, LogisticTrainer) and trainer.steps == 5
    assert kind_of(trainer) == CUSTOM and isinstance(trainer_for(LogisticTrainer), LogisticTrainer)
    with pytest.raises(ConfigError, match="fits binary models, not 'regression'"):
        trainer_for(CUSTOM, ModelInputs(FEATURES, "target", "regression"))
    with pytest.raises(ConfigError, match="has no NoSuchTrainer"):
        trainer_for(f"{__name__}:NoSuchTrainer")
    with pytest.raises(ConfigError, match="cannot import"):
        trainer_for("no_such_module_fti:Trainer")
    with pytest.raises(ConfigError, match="lacks fit, load"):
        trainer_for(f"{__name__}:Fitted")
    with pytest.raises(ConfigError, match="fits preference models, not 'binary'"):
        trainer_for("lora", inputs)
    with pytest.raises(ConfigError, match="inputs must be ModelInputs"):
        trainer_for("xgboost", {"n_estimators": 3})  # type: ignore[arg-type]


def test_unsafe_artifacts_are_refused(tmp_path: Path) -> None:
    inputs = ModelInputs(FEATURES, "target", "binary")
    with pytest.raises(TrainerError, match=r"\['model.pkl'\] are not in a safe format"):
        write_signature(tmp_path, LogisticTrainer(), inputs, ["model.pkl"])
    (tmp_path / "model.joblib").write_bytes(b"\x80\x04")
    document = {"format": "fti-signature/1", "kind": CUSTOM, **inputs.to_dict(),
                "files": ["model.joblib"]}
    (tmp_path / SIGNATURE_FILE).write_text(json.dumps(document))
    with pytest.raises(TrainerError, match="not in a safe format"):
        load_artifacts(tmp_path)


# -- serving through the registry ------------------------------------------------------------------


def _register(registry: ModelRegistry, name: str, fitted: Fitted, tmp_path: Path) -> int:
    staging = tmp_path / f"stage-{name}-{registry.next_version(name)}"
    staging.mkdir()
    for file in fitted.result.files:
        shutil.copy(file, staging / Path(file).name)
    version = registry.register(
        name, staging, gates={"passed": True, "reasons": []}, card=None,
        params={"trainer": fitted.kind, "task": fitted.task},
    )
    return version.version


def test_load_serving_model_serves_every_kind(fitted: Fitted, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    version = _register(registry, "m", fitted, tmp_path)
    served = load_serving_model(registry, "m", version)

    assert (served.kind, served.task, served.features) == (fitted.kind, fitted.task, FEATURES)
    assert served.classes == (CLASSES if fitted.task == "multiclass" else None)
    scores = served.score(fitted.inputs.matrix(fitted.split.test))
    np.testing.assert_array_equal(scores, fitted.predictions)
    decisions = served.decide(scores, 0.5)
    assert len(decisions) == fitted.split.test.num_rows
    if fitted.task == "binary":
        assert {type(d) for d in decisions} == {int} and set(decisions) == {0, 1}
        assert decisions == [int(s >= 0.5) for s in scores]
    elif fitted.task == "multiclass":
        assert set(decisions) <= set(CLASSES) and {type(d) for d in decisions} == {str}
        assert decisions == [CLASSES[i] for i in np.argmax(scores, axis=1)]
    else:
        assert {type(d) for d in decisions} == {float}
        np.testing.assert_allclose(decisions, scores, rtol=1e-6)
    np.testing.assert_array_equal(load_version(registry, "m", version).predict(
        fitted.inputs.matrix(fitted.split.test)), fitted.predictions)


def _fit_binary(kind: str, workdir: Path, seed: int) -> Fitted:
    inputs = ModelInputs(FEATURES, "target", "binary")
    split = _split("binary", seed)
    result = trainer_for(kind, inputs, PARAMS[kind]).fit(split, inputs, "cpu", workdir)
    return Fitted(kind, "binary", inputs, split, result, workdir, np.empty(0))


@pytest.mark.parametrize("kind", ["xgboost", CUSTOM])
def test_a_tampered_signature_is_refused(kind: str, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    version = _register(registry, "m", _fit_binary(kind, tmp_path / "fit", 2), tmp_path)
    path = registry.root / "m" / str(version) / SIGNATURE_FILE
    path.chmod(0o644)
    path.write_text(path.read_text().replace('"signal_a"', '"other"'))
    with pytest.raises(FtiError, match="sha256 mismatch"):
        load_serving_model(registry, "m", version)


def test_the_champion_swaps_across_kinds(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    holder = ChampionHolder(registry, "swap")
    kinds = []
    for kind in ("xgboost", "mlp", CUSTOM):
        fitted = _fit_binary(kind, tmp_path / kind.split(":")[-1], 3)
        version = _register(registry, "swap", fitted, tmp_path)
        registry.set_alias("swap", CHAMPION, version)
        assert holder.refresh() and holder.current is not None
        kinds.append((holder.current.version, holder.current.kind))
        test = fitted.split.test
        scores = holder.current.score(fitted.inputs.matrix(test))
        assert evaluate("binary", fitted.inputs.target(test), scores)["roc_auc"] > 0.85
    assert kinds == [(1, "xgboost"), (2, "mlp"), (3, CUSTOM)]
    assert not holder.refresh()  # nothing moved


def test_a_version_registered_before_signatures_still_serves(tmp_path: Path) -> None:
    inputs = ModelInputs(FEATURES, "target", "binary")
    split = _split("binary", seed=4)
    workdir = tmp_path / "fit"
    trainer_for("xgboost", inputs, PARAMS["xgboost"]).fit(split, inputs, "cpu", workdir)
    staging = tmp_path / "old"
    staging.mkdir()
    shutil.copy(workdir / MODEL_FILE, staging / MODEL_FILE)  # no signature.json
    registry = ModelRegistry(tmp_path / "registry")
    registry.register("old", staging, gates={"passed": True, "reasons": []}, card=None,
                      params={"trainer": "xgboost", "feature_columns": list(FEATURES)})
    served = load_serving_model(registry, "old", 1)
    assert (served.kind, served.task, served.features) == ("xgboost", "binary", FEATURES)
    assert served.decide(served.score(inputs.matrix(split.test))[:3], 0.5)[0] in (0, 1)


def test_a_kind_serving_cannot_load_gets_a_clear_error(tmp_path: Path) -> None:
    staging = tmp_path / "adapter"
    staging.mkdir()
    (staging / "adapter.safetensors").write_bytes(b"weights")
    registry = ModelRegistry(tmp_path / "registry")
    registry.register("pref", staging, gates={"passed": True, "reasons": []}, card=None,
                      params={"trainer": "svm"})
    with pytest.raises(ConfigError, match="no trainer of kind 'svm'; known kinds: lora, mlp"):
        load_serving_model(registry, "pref", 1)


# -- the text trainer: LoRA on pairs of responses --------------------------------------------


@pytest.fixture(scope="module")
def lora_fitted(tmp_path_factory: pytest.TempPathFactory) -> Fitted:
    base = tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))
    inputs = ModelInputs(TEXT_COLUMNS, "winner", "preference")
    split = pair_split(160, 40, 80, seed=6)
    workdir = tmp_path_factory.mktemp("preference-fit")
    trainer = trainer_for("lora", inputs, TINY_PARAMS | {"base_model": str(base)})
    result = trainer.fit(split, inputs, "cpu", workdir)
    predictions = trainer.load(workdir).predict(table_inputs(split.test, TEXT_COLUMNS))
    return Fitted("lora", "preference", inputs, split, result, workdir, predictions)


def test_lora_learns_and_writes_safe_files_with_a_text_signature(lora_fitted: Fitted) -> None:
    y = lora_fitted.inputs.target(lora_fitted.split.test)
    metrics = evaluate("preference", y, lora_fitted.predictions, classes=OUTCOMES)
    assert metrics["accuracy"] > metrics["majority_accuracy"] + 0.1, metrics
    assert lora_fitted.predictions.shape == (80, 3)
    written = [p for p in lora_fitted.workdir.rglob("*") if p.is_file()]
    assert written and all(p.suffix in SAFE_SUFFIXES for p in written), written
    assert not any(_pickle_like(p.read_bytes()) for p in written)
    signature = read_signature(lora_fitted.workdir)
    assert (signature.kind, signature.task, signature.features, signature.classes) == (
        "lora", "preference", TEXT_COLUMNS, OUTCOMES)
    assert signature.extra["input"] == "text"
    assert set(signature.files) == {Path(f).name for f in lora_fitted.result.files} - {
        SIGNATURE_FILE}


def test_lora_serves_texts_through_the_registry(lora_fitted: Fitted, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    version = _register(registry, "judge", lora_fitted, tmp_path)
    served = load_serving_model(registry, "judge", version)
    assert (served.kind, served.task, served.features, served.classes, served.reads_text) == (
        "lora", "preference", TEXT_COLUMNS, OUTCOMES, True)
    X = table_inputs(lora_fitted.split.test, TEXT_COLUMNS)
    scores = served.score(X)
    np.testing.assert_array_equal(scores, lora_fitted.predictions)
    assert served.decide(scores) == [OUTCOMES[i] for i in np.argmax(scores, axis=1)]
    with pytest.raises(TrainerError, match=r"3 columns \['prompt', 'response_a', 'response_b'"):
        served.score(X[:, :2])
