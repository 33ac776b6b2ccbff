"""The PyTorch MLP trainer: seeded determinism, bitwise resume, safe save/load, class weights.

Also the trainer contract, which the MLP and the XGBoost trainer both pass.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from safetensors.torch import load_file

from fti.errors import ConfigError
from fti.features.dataset_records import Split
from fti.models.trainers import EpochCallback, ModelInputs, trainer_for
from fti.models.trainers.checkpoints import checkpoint_epochs
from fti.models.trainers.mlp import MLPParams, MLPTrainer
from fti.models.trainers.mlp_model import Standardizer, build_network, pos_weight

#: Small and quick; patience above epochs so every run trains all epochs.
FAST = {"hidden_sizes": [16, 8], "epochs": 5, "batch_size": 64, "patience": 10}
#: Twelve numeric inputs and a binary label, like a small tabular view.
FEATURE_COLUMNS: tuple[str, ...] = ("amount", "channel_code", *(f"x{i}" for i in range(10)))
LABEL_COLUMN = "y"
INPUTS = ModelInputs(FEATURE_COLUMNS, LABEL_COLUMN, "binary")


def _part(rng: np.random.Generator, n: int, positives: int | None = None) -> pa.Table:
    columns = {name: rng.normal(size=n) for name in FEATURE_COLUMNS}
    columns["amount"] = rng.lognormal(4.0, 1.0, n)
    columns["amount"][::17] = np.nan  # missing values must not break training
    risk = np.nan_to_num(np.log(columns["amount"]), nan=4.0) - 4.0 + columns["channel_code"]
    labels = (risk + rng.normal(0, 0.5, n) > 1.5).astype(np.int8)
    if positives is not None:
        labels = np.zeros(n, dtype=np.int8)
        labels[rng.choice(n, positives, replace=False)] = 1
    return pa.table({**columns, LABEL_COLUMN: labels})


def _split(seed: int = 0, train_positives: int | None = None) -> Split:
    rng = np.random.default_rng(seed)
    return Split(
        train=_part(rng, 600, train_positives),
        validation=_part(rng, 200, 100 if train_positives is not None else None),
        test=_part(rng, 200),
    )


def _weights(workdir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(workdir / "model.safetensors"))


def _assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_same_seed_gives_bitwise_equal_weights_and_another_seed_does_not(tmp_path: Path) -> None:
    split = _split()
    first = MLPTrainer(**FAST).fit(split, INPUTS, "cpu", tmp_path / "a")
    second = MLPTrainer(**FAST).fit(split, INPUTS, "cpu", tmp_path / "b")
    other = MLPTrainer(**FAST, seed=7).fit(split, INPUTS, "cpu", tmp_path / "c")

    _assert_bitwise_equal(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    assert first.history == second.history and len(first.history["val_loss"]) == 5
    a, c = _weights(tmp_path / "a"), _weights(tmp_path / "c")
    assert any(not torch.equal(a[name], c[name]) for name in a)
    assert other.history != first.history
    assert not torch.are_deterministic_algorithms_enabled()  # the global mode was restored


class _Killed(Exception):
    """Stands for the process dying right after a checkpoint."""


def _kill_after(epoch: int) -> EpochCallback:
    def callback(number: int, losses: dict[str, float]) -> None:
        if number == epoch:
            raise _Killed

    return callback


def test_resume_after_interruption_ends_with_the_same_weights(tmp_path: Path) -> None:
    split = _split()
    whole = MLPTrainer(**FAST).fit(split, INPUTS, "cpu", tmp_path / "whole")
    with pytest.raises(_Killed):
        MLPTrainer(**FAST).fit(split, INPUTS, "cpu", tmp_path / "cut", progress=_kill_after(2))
    assert checkpoint_epochs(tmp_path / "cut" / "checkpoints") == [1, 2]
    assert not (tmp_path / "cut" / "model.safetensors").exists()

    resumed = MLPTrainer(**FAST).fit(split, INPUTS, "cpu", tmp_path / "cut")

    assert resumed.params["resumed_from_epoch"] == 2 and whole.params["resumed_from_epoch"] is None
    _assert_bitwise_equal(_weights(tmp_path / "whole"), _weights(tmp_path / "cut"))
    assert resumed.history == whole.history
    assert checkpoint_epochs(tmp_path / "cut" / "checkpoints") == [1, 2, 3, 4, 5]


def test_a_corrupt_newest_checkpoint_falls_back_to_the_one_before(tmp_path: Path) -> None:
    split = _split()
    MLPTrainer(**FAST).fit(split, INPUTS, "cpu", tmp_path / "whole")
    with pytest.raises(_Killed):
        MLPTrainer(**FAST).fit(split, INPUTS, "cpu", tmp_path / "cut", progress=_kill_after(3))
    newest = tmp_path / "cut" / "checkpoints" / "epoch-3.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])  # torn write

    resumed = MLPTrainer(**FAST).fit(split, INPUTS, "cpu", tmp_path / "cut")

    assert resumed.params["resumed_from_epoch"] == 2
    _assert_bitwise_equal(_weights(tmp_path / "whole"), _weights(tmp_path / "cut"))


def test_checkpoints_of_other_hyperparameters_are_not_resumed(tmp_path: Path) -> None:
    split = _split()
    with pytest.raises(_Killed):
        MLPTrainer(**FAST).fit(split, INPUTS, "cpu", tmp_path, progress=_kill_after(2))
    result = MLPTrainer(**FAST | {"lr": 0.02}).fit(split, INPUTS, "cpu", tmp_path)
    assert result.params["resumed_from_epoch"] is None and result.params["epochs_run"] == 5


def test_saved_model_reloads_from_safetensors_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    split = _split()
    trainer = MLPTrainer(**FAST)
    result = trainer.fit(split, INPUTS, "cpu", tmp_path)
    names = sorted(Path(f).name for f in result.files)
    assert names == ["mlp.json", "model.safetensors", "signature.json"]
    assert {p.suffix for p in (tmp_path / "checkpoints").iterdir()} == {".json", ".safetensors"}

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model must load without pickle")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    X = INPUTS.matrix(split.test)
    scores = trainer.load(tmp_path).predict(X)

    config = json.loads((tmp_path / "mlp.json").read_text())
    assert config["feature_columns"] == list(FEATURE_COLUMNS)
    network = build_network(len(FEATURE_COLUMNS), config["hidden_sizes"], 0.0)
    network.load_state_dict(_weights(tmp_path))
    network.eval()
    standardizer = Standardizer(
        np.array(config["mean"], dtype=np.float32), np.array(config["std"], dtype=np.float32)
    )
    with torch.no_grad():
        logits = network(torch.from_numpy(standardizer.transform(X))).squeeze(1)
    np.testing.assert_array_equal(scores, torch.sigmoid(logits).numpy())
    np.testing.assert_array_equal(trainer.predict(result.files, X), scores)
    assert scores.dtype == np.float32 and ((scores >= 0) & (scores <= 1)).all()


def test_pos_weight_comes_from_the_train_split(tmp_path: Path) -> None:
    split = _split(train_positives=60)  # 540 negatives; validation is half fraud
    result = MLPTrainer(**FAST | {"epochs": 1}).fit(split, INPUTS, "cpu", tmp_path)
    assert result.params["pos_weight"] == pytest.approx(9.0)
    assert pos_weight(np.array([0, 0, 1, 1, 1])) == pytest.approx(2 / 3)
    assert pos_weight(np.zeros(4)) == 1.0


def test_standardization_uses_train_statistics() -> None:
    X = np.array([[1.0, 5.0], [3.0, 5.0], [np.nan, 5.0]], dtype=np.float32)
    s = Standardizer.fit(X)
    assert s.mean.tolist() == [2.0, 5.0] and s.std.tolist() == [1.0, 1.0]
    assert s.transform(X).tolist() == [[-1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]


def test_bad_hyperparameters_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"dropout must be in \[0, 1\)"):
        MLPParams(dropout=1.5)
    with pytest.raises(ConfigError, match="epochs, batch_size"):
        MLPTrainer(epochs=0)


@pytest.mark.parametrize(
    ("kind", "hyperparameters"),
    [("mlp", FAST), ("xgboost", {"n_estimators": 20, "eval_train": True})],
)
def test_every_trainer_keeps_the_contract(
    kind: str, hyperparameters: dict[str, object], tmp_path: Path
) -> None:
    split = _split()
    trainer = trainer_for(kind, INPUTS, hyperparameters)
    epochs: list[int] = []
    result = trainer.fit(split, INPUTS, "cpu", tmp_path,
                         progress=lambda n, losses: epochs.append(n))

    assert trainer.kind == kind and result.params["device"] == "cpu"
    assert sorted(Path(f).name for f in result.files) == sorted(trainer.artifact_files)
    assert all(Path(f).parent == tmp_path for f in result.files)
    (rounds,) = {len(values) for values in result.history.values()}
    assert len(result.history) == 2 and epochs == list(range(1, rounds + 1))
    X = INPUTS.matrix(split.test)
    scores = trainer.load(tmp_path).predict(X)
    assert scores.shape == (200,) and ((scores >= 0) & (scores <= 1)).all()
    np.testing.assert_array_equal(trainer.predict(tmp_path, X), scores)
    assert trainer.load(tmp_path).predict(X[:0]).shape == (0,)


def test_xgboost_scores_the_train_split_each_round_only_when_asked(tmp_path: Path) -> None:
    split = _split()
    quiet = trainer_for("xgboost", INPUTS, {"n_estimators": 15}).fit(
        split, INPUTS, "cpu", tmp_path / "quiet")
    watched = trainer_for("xgboost", INPUTS, {"n_estimators": 15, "eval_train": True}).fit(
        split, INPUTS, "cpu", tmp_path / "watched")
    assert list(quiet.history) == ["val_logloss"]
    assert list(watched.history) == ["train_logloss", "val_logloss"]
    assert quiet.history["val_logloss"] == watched.history["val_logloss"]  # same trees
