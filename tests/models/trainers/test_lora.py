"""The pairwise LoRA trainer on a tiny encoder: the pair logits and their symmetry, the
batches with swaps, the cached lower layers, safe artifacts, the base weights' sha256
check, and outcomes given in any label order."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from fti.errors import ConfigError
from fti.features.dataset_records import Split
from fti.models.errors import TrainerError
from fti.models.trainers import ModelInputs, load_artifacts, table_inputs, trainer_for
from fti.models.trainers.lora.base_model import TOKENIZER_FILE, load_tokenizer
from fti.models.trainers.lora.loop import LowerCache, LowerOnTheFly, PairBatches, lower_layers
from fti.models.trainers.lora.params import CONFIG_FILE, LoraParams
from fti.models.trainers.lora.scorer import adapted_layers, build_scorer, pair_logits
from fti.models.trainers.lora.text import PairTexts, encode, pair_texts
from tests.models.trainers.lora_support import (
    TEXT_COLUMNS,
    TINY_PARAMS,
    pair_split,
    tiny_encoder,
)

INPUTS = ModelInputs(TEXT_COLUMNS, "winner", "preference")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture(scope="module")
def fitted(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Split, dict]:
    workdir = tmp_path_factory.mktemp("lora-fit")
    split = pair_split(120, 30, 40, seed=2)
    result = trainer_for("lora", INPUTS, TINY_PARAMS | {"base_model": str(tiny)}).fit(
        split, INPUTS, "cpu", workdir)
    return workdir, split, result.params


def test_pair_logits_make_a_tie_of_close_scores_and_swap_with_the_pair() -> None:
    outputs = torch.tensor([[1.0, 0.4], [3.0, 0.0], [1.1, 0.4], [0.0, 0.0]])
    logits = pair_logits(outputs)
    assert logits.argmax(dim=1).tolist() == [2, 0]  # close scores tie; 3 vs 0 is a win
    swapped = pair_logits(torch.cat([outputs[2:], outputs[:2]]))
    assert torch.equal(swapped, logits[:, [1, 0, 2]])


def test_batches_cover_every_pair_both_ways_per_pass() -> None:
    labels = np.array([0, 1, 2, 0, 1])
    batches = PairBatches(labels, batch_size=4, seed=3)
    seen = [tuple(x) for step in range(5) for x in zip(*batches.batch(step), strict=True)]
    first_pass, second_pass = seen[:10], seen[10:20]
    for part in (first_pass, second_pass):
        assert sorted((int(r), bool(s)) for r, s, _ in part) == sorted(
            (r, s) for r in range(5) for s in (False, True))
    for row, swapped, outcome in seen:
        assert outcome == ([1, 0, 2][labels[row]] if swapped else labels[row])
    assert first_pass != second_pass  # a fresh order per pass
    assert [tuple(x) for x in zip(*PairBatches(labels, 4, 3).batch(1), strict=True)] == seen[4:8]


def test_cached_lower_layers_give_the_full_forward_logits(tiny: Path) -> None:
    params = LoraParams(base_model=str(tiny), max_length=48)
    scorer = build_scorer(tiny, params).eval()
    assert adapted_layers(scorer.encoder.get_base_model(), 2) == [0, 1]
    tokenizer = load_tokenizer(tiny / TOKENIZER_FILE, 48)
    split = pair_split(12, 0, 0, seed=4)
    texts = pair_texts(table_inputs(split.train, TEXT_COLUMNS))
    cache = LowerCache(scorer, tokenizer, texts, torch.device("cpu"), chunk=5)
    rows, swapped = np.arange(12), np.array([False, True] * 6)
    batch = cache.batch(rows, swapped, np.zeros(12, dtype=np.int64))
    picked = texts.take(list(range(12)))
    first = [b if s else a for a, b, s in zip(picked.first, picked.second, swapped, strict=True)]
    second = [a if s else b for a, b, s in zip(picked.first, picked.second, swapped, strict=True)]
    on_the_fly = LowerOnTheFly(scorer, tokenizer, texts, torch.device("cpu")).batch(
        rows, swapped, np.zeros(12, dtype=np.int64))
    with torch.no_grad():
        direct = scorer(encode(tokenizer, PairTexts(picked.prompts, first, second)))
        cached = scorer.upper(batch.hidden, batch.attention_mask)
        again = scorer.upper(on_the_fly.hidden, on_the_fly.attention_mask)
    torch.testing.assert_close(cached, direct, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(again, direct, atol=1e-5, rtol=1e-4)
    small = LoraParams(base_model=str(tiny), max_length=48, cache_mb=0.001)
    assert isinstance(lower_layers(scorer, tokenizer, texts, torch.device("cpu"), small),
                      LowerOnTheFly)
    assert isinstance(lower_layers(scorer, tokenizer, texts, torch.device("cpu"), params),
                      LowerCache)


def test_only_the_adapters_of_the_top_layers_and_the_head_train(tiny: Path) -> None:
    scorer = build_scorer(tiny, LoraParams(base_model=str(tiny), top_layers=1))
    trainable = [n for n, p in scorer.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    assert all(".layer.1." in n for n in trainable if "lora_" in n)  # the top layer only


def test_a_fit_writes_safe_files_and_reloads_to_the_same_probabilities(
    fitted: tuple[Path, Split, dict], tmp_path: Path
) -> None:
    workdir, split, params = fitted
    names = sorted(p.name for p in workdir.iterdir())
    assert names == sorted(["adapter.safetensors", "head.safetensors", CONFIG_FILE,
                            TOKENIZER_FILE, "signature.json"])
    signature = json.loads((workdir / "signature.json").read_text())
    assert signature["input"] == "text" and signature["classes"] == ["A", "B", "tie"]
    assert params["train_pairs"] == 120 and 0 <= params["val_accuracy"] <= 1
    X = table_inputs(split.test, TEXT_COLUMNS)
    first = load_artifacts(workdir).predict(X)
    for name in names:
        shutil.copy(workdir / name, tmp_path / name)
    again = load_artifacts(tmp_path).predict(X)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (40, 3) and np.allclose(first.sum(axis=1), 1.0, atol=1e-5)
    swapped = load_artifacts(tmp_path).predict(X[:, [0, 2, 1]])
    np.testing.assert_allclose(swapped, first[:, [1, 0, 2]], atol=1e-5)
    with pytest.raises(TrainerError, match=r"3 columns \['prompt', 'response_a', 'response_b'"):
        load_artifacts(tmp_path).predict(X[:, :2])


def test_changed_base_weights_are_refused(fitted: tuple[Path, Split, dict],
                                          tmp_path: Path) -> None:
    workdir, _, _ = fitted
    config = json.loads((workdir / CONFIG_FILE).read_text())
    copy = tmp_path / "base"
    shutil.copytree(config["params"]["base_model"], copy)
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\x00\x00\x80\x3f")
    config["params"]["base_model"] = str(copy)
    for name in ("adapter.safetensors", "head.safetensors", TOKENIZER_FILE, "signature.json"):
        shutil.copy(workdir / name, tmp_path / name)
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(TrainerError, match="sha256 .*refusing to use them"):
        load_artifacts(tmp_path)


def test_outcomes_map_any_label_values_to_columns_of_the_classes(tiny: Path,
                                                                 tmp_path: Path) -> None:
    split = pair_split(40, 10, 10, seed=5)
    codes = {"A": "first", "B": "second", "tie": "draw"}

    def coded(table: pa.Table) -> pa.Table:
        return table.set_column(3, "winner", pa.array([codes[v] for v in
                                                        table["winner"].to_pylist()]))

    split = Split(coded(split.train), coded(split.validation), coded(split.test))
    params = TINY_PARAMS | {"base_model": str(tiny), "steps": 2,
                            "outcomes": ["first", "second", "draw"]}
    trainer_for("lora", INPUTS, params).fit(split, INPUTS, "cpu", tmp_path)
    model = load_artifacts(tmp_path)
    assert model.signature.classes == ("draw", "first", "second")  # sorted label values
    X = table_inputs(split.test, TEXT_COLUMNS)
    swapped = model.predict(X[:, [0, 2, 1]])
    np.testing.assert_allclose(swapped, model.predict(X)[:, [0, 2, 1]], atol=1e-5)
    with pytest.raises(TrainerError, match="must hold exactly the outcomes"):
        trainer_for("lora", INPUTS, TINY_PARAMS | {"base_model": str(tiny)}).fit(
            split, INPUTS, "cpu", tmp_path / "default-outcomes")


def test_the_trainer_refuses_what_it_cannot_fit() -> None:
    with pytest.raises(ConfigError, match="fits preference models, not 'binary'"):
        trainer_for("lora", ModelInputs(TEXT_COLUMNS, "winner", "binary"))
    with pytest.raises(ConfigError, match="rank >= 1"):
        trainer_for("lora", INPUTS, {"rank": 0})
    with pytest.raises(ConfigError, match="does not take hyperparameters"):
        trainer_for("lora", INPUTS, {"learning_rate": 0.1})
    two = ModelInputs(("prompt", "response_a"), "winner", "preference")
    with pytest.raises(TrainerError, match="three text features"):
        trainer_for("lora", two).fit(pair_split(10, 2, 2), two, "cpu", Path("/nonexistent"))
