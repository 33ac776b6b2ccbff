"""LoRA preference classifier: training, checkpoint/resume, safe artifacts, and the job.

Most tests use a tiny BERT built from a config (hidden 32, 2 layers, MiniLM's vocabulary);
one test runs a few steps on the real bundled MiniLM.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from peft import get_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import BertConfig, BertForSequenceClassification

from fti.connectors.kafka.reader import KafkaRecord
from fti.connectors.offline.store import LanceOfflineStore
from fti.errors import ConfigError, FtiError, RegistryError
from fti.events import parse_preference
from fti.flows.preferences import PREFERENCES_SCHEMA, PREFERENCES_TABLE, preference_row
from fti.flows.records import Decoded
from fti.models.registry import ModelRegistry
from fti.models.trainers.lora import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    CARD_FILE,
    HEAD_FILE,
    MINILM_WEIGHTS_SHA256,
    EncodedPairs,
    _collate,
    base_model_path,
    checkpoints,
    encode_pairs,
    head_state,
    load_adapter,
    load_registered_adapter,
    load_tokenizer,
    lora_hyperparameters,
    predict_proba,
    read_preference_pairs,
    run_lora_job,
    save_adapter,
    split_by_pair_id,
    train_lora,
    verify_base_model,
)
from fti.settings import Settings
from fti.synthetic.preferences import PreferenceSpec, generate_preferences

HEAD_KEYS = {"classifier.weight", "classifier.bias", "bert.pooler.dense.weight",
             "bert.pooler.dense.bias"}
FAST = {"lr": 1e-2, "batch_size": 8, "max_steps": 6, "warmup_ratio": 0.1}


class Killed(Exception):
    """Stands in for the process being killed mid-run."""


def _rows(count: int, seed: int = 5) -> list[dict[str, Any]]:
    events = [parse_preference(r.value)
              for r in generate_preferences(PreferenceSpec(count=count, seed=seed))]
    return [e.model_dump() | {"label": e.label} for e in events]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return load_tokenizer(base_model_path())


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> Path:
    """A tiny random BERT classifier saved as a local Hugging Face model directory."""
    path = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        num_labels=3)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def pairs(tokenizer: Any) -> EncodedPairs:
    return encode_pairs(tokenizer, _rows(48), max_length=128)


def _adapter_weights(model: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}


def test_encoding_keeps_both_responses_within_max_length(tokenizer: Any) -> None:
    long = {"prompt": "why " * 200, "response_a": "yes " * 200, "response_b": "no", "label": 1}
    encoded = encode_pairs(tokenizer, [long], max_length=32)
    ids = encoded.input_ids[0]
    assert len(ids) == 32 and ids[0] == tokenizer.cls_token_id
    no = tokenizer.encode("no", add_special_tokens=False)[0]
    assert ids.count(tokenizer.sep_token_id) == 3 and ids[-2] == no
    assert encoded.b_starts == [30]  # response B ("no", [SEP]) is token type 1
    inputs, labels = _collate(encoded, [0], torch.device("cpu"))
    assert inputs["token_type_ids"][0].tolist() == [0] * 30 + [1, 1] and labels.tolist() == [1]


def test_loss_decreases(tiny_model: Path, pairs: EncodedPairs) -> None:
    lora, params = lora_hyperparameters(FAST | {"max_steps": 20})
    trained = train_lora(tiny_model, pairs, lora, params)
    assert len(trained.losses) == trained.steps == 20
    first, last = sum(trained.losses[:5]) / 5, sum(trained.losses[-5:]) / 5
    assert last < first - 0.03, trained.losses


def test_a_killed_run_resumes_to_the_same_weights(tiny_model: Path, pairs: EncodedPairs,
                                                  tmp_path: Path) -> None:
    lora, params = lora_hyperparameters(FAST | {"grad_accum": 2, "checkpoint_every": 2})
    straight = train_lora(tiny_model, pairs, lora, params, workdir=tmp_path / "straight")

    def kill_after_step_3(step: int, loss: float) -> None:
        if step == 3:
            raise Killed

    workdir = tmp_path / "interrupted"
    with pytest.raises(Killed):
        train_lora(tiny_model, pairs, lora, params, workdir=workdir, on_step=kill_after_step_3)
    assert [p.name for p in checkpoints(workdir)] == ["checkpoint-00000002"]
    resumed = train_lora(tiny_model, pairs, lora, params, workdir=workdir)

    assert resumed.resumed_from == 2 and resumed.losses == straight.losses
    expected, actual = _adapter_weights(straight.model), _adapter_weights(resumed.model)
    assert expected.keys() == actual.keys()
    assert len(expected) == 12  # 2 layers x (query, value) x (A, B) + classifier + pooler
    for name, tensor in expected.items():
        assert torch.equal(actual[name], tensor), name  # bitwise on cpu
    assert [p.name for p in checkpoints(workdir)] == ["checkpoint-00000004", "checkpoint-00000006"]


def test_a_checkpoint_of_another_run_is_not_resumed(tiny_model: Path, pairs: EncodedPairs,
                                                    tmp_path: Path) -> None:
    lora, params = lora_hyperparameters(FAST | {"max_steps": 2, "checkpoint_every": 1})
    train_lora(tiny_model, pairs, lora, params, workdir=tmp_path)
    other = params.model_copy(update={"lr": 1e-3})
    with pytest.raises(FtiError, match="belongs to a run with other data"):
        train_lora(tiny_model, pairs, lora, other, workdir=tmp_path)


def test_saved_adapter_restores_the_head_and_a_tampered_head_is_refused(
    tiny_model: Path, pairs: EncodedPairs, tmp_path: Path
) -> None:
    lora, params = lora_hyperparameters(FAST | {"max_steps": 3})
    trained = train_lora(tiny_model, pairs, lora, params)
    head = save_adapter(trained.model, tmp_path)
    assert set(head) == HEAD_KEYS
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert saved == [ADAPTER_CONFIG, ADAPTER_WEIGHTS, HEAD_FILE]
    for name in (ADAPTER_WEIGHTS, HEAD_FILE):
        with safe_open(tmp_path / name, framework="pt") as handle:  # really safetensors
            assert list(handle.keys())
    assert any("classifier" in k for k in load_file(tmp_path / ADAPTER_WEIGHTS))

    reloaded = load_adapter(tiny_model, tmp_path, expected_head=head_state(trained.model))
    for name, tensor in head_state(reloaded).items():
        assert torch.equal(tensor, head[name])
    probs = predict_proba(reloaded, pairs)
    assert probs.shape == (len(pairs), 3)
    assert torch.allclose(torch.from_numpy(probs), torch.from_numpy(predict_proba(trained.model,
                                                                                  pairs)))

    weights = load_file(tmp_path / ADAPTER_WEIGHTS)
    key = next(k for k in weights if k.endswith("classifier.weight"))
    save_file(weights | {key: weights[key] + 0.01}, tmp_path / ADAPTER_WEIGHTS)
    with pytest.raises(RegistryError, match="classifier head classifier.weight after reload"):
        load_adapter(tiny_model, tmp_path, expected_head=head)
    with pytest.raises(RegistryError, match="differs from the trained head"):
        load_adapter(tiny_model, tmp_path)  # against the saved head file

    headless = {k: v for k, v in weights.items() if "classifier" not in k}
    save_file(headless, tmp_path / ADAPTER_WEIGHTS)
    with pytest.raises(RegistryError, match="classifier head is missing"):
        load_adapter(tiny_model, tmp_path, expected_head=head)


def test_base_model_weights_are_checked(tiny_model: Path, tmp_path: Path) -> None:
    sha = verify_base_model(tiny_model)
    assert verify_base_model(tiny_model, sha) == sha
    with pytest.raises(RegistryError, match="sha256 .* expected 00"):
        verify_base_model(tiny_model, "00" * 32)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(FtiError, match=r"no \*.safetensors weights .*pytorch_model.bin"):
        verify_base_model(tmp_path)


def test_hyperparameters_are_validated() -> None:
    with pytest.raises(ConfigError, match="learning_rate"):
        lora_hyperparameters({"learning_rate": 0.1})
    with pytest.raises(ConfigError, match="rank"):
        lora_hyperparameters({"rank": 0})


def test_minilm_lora_trains_only_adapters_and_head(tokenizer: Any) -> None:
    path = base_model_path()
    assert verify_base_model(path) == MINILM_WEIGHTS_SHA256
    encoded = encode_pairs(tokenizer, _rows(32, seed=8), max_length=128)
    lora, params = lora_hyperparameters({"max_steps": 4, "batch_size": 8, "lr": 1e-3})
    trained = train_lora(path, encoded, lora, params)
    assert len(trained.losses) == 4

    base = load_file(path / "model.safetensors")
    weights = {n: p.detach() for n, p in trained.model.named_parameters()}
    compared = 0
    for name, tensor in weights.items():
        plain = name.removeprefix("base_model.model.bert.")
        plain = plain.replace(".base_layer", "").replace(".original_module", "")
        if plain in base:
            assert torch.equal(tensor, base[plain]), f"base weight {name} changed"
            compared += 1
    assert compared == len(base) - 1  # every pretrained weight (not the position_ids buffer)
    lora_b = [t for n, t in weights.items() if "lora_B" in n]
    assert len(lora_b) == 12 and all(t.abs().sum() > 0 for t in lora_b)  # zero-initialised
    for head in ("classifier.{}.weight", "bert.pooler.{}.dense.weight"):
        head = "base_model.model." + head
        assert not torch.equal(weights[head.format("modules_to_save.default")],
                               weights[head.format("original_module")])  # the head was trained
    trainable = {n for n, p in trained.model.named_parameters() if p.requires_grad}
    assert all("lora_" in n or "modules_to_save" in n for n in trainable)


def _store_pairs(settings: Settings, count: int) -> None:
    records = list(generate_preferences(PreferenceSpec(count=count, seed=13)))
    rows = [preference_row(Decoded(KafkaRecord("preferences", 0, i, r.key, r.value, 0),
                                   parse_preference(r.value)))
            for i, r in enumerate(records)]
    store = LanceOfflineStore(settings.offline_dir)
    store.append_once(PREFERENCES_TABLE, PREFERENCES_SCHEMA, rows[:120])
    store.append_once(PREFERENCES_TABLE, PREFERENCES_SCHEMA, rows[100:])  # overlapping replay


def test_split_is_seeded_and_stable(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    _store_pairs(settings, 200)
    table, version = read_preference_pairs(settings.offline_dir)
    assert table.num_rows == 200 and len(set(table["pair_id"].to_pylist())) == 200
    train, test = split_by_pair_id(table, 0.2, seed=1)
    assert train.num_rows + test.num_rows == 200 and 20 < test.num_rows < 60
    again = split_by_pair_id(table.slice(0, 150), 0.2, seed=1)[1]["pair_id"].to_pylist()
    assert set(again) <= set(test["pair_id"].to_pylist())  # a pair keeps its side
    assert split_by_pair_id(table, 0.2, seed=2)[1] != test


def test_run_lora_job_registers_a_version_with_its_card(tiny_model: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    _store_pairs(settings, 200)
    events: list[Any] = []
    spec = SimpleNamespace(name="preference-lora", device="cpu", hyperparameters=FAST | {
        "base_model": str(tiny_model), "min_accuracy": 0.0, "checkpoint_every": 3})
    result = run_lora_job(settings, spec, publish=events.append)

    registry = ModelRegistry(settings.registry_dir)
    meta = registry.get("preference-lora", result.version)
    assert result.version == 1 and result.promoted and registry.alias("preference-lora") == 1
    assert [e.event for e in events] == ["registered", "promoted"]
    expected = {ADAPTER_WEIGHTS, ADAPTER_CONFIG, HEAD_FILE, CARD_FILE, "tokenizer.json", "loss.png"}
    assert expected <= set(meta.files)
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in meta.files)
    assert meta.params["base_sha256"] == verify_base_model(tiny_model) == result.base_sha256
    assert meta.dataset["table_version"] == result.table_version
    assert meta.lineage is not None and meta.device == "cpu"
    assert meta.lineage.table_versions == {"preference_pairs": result.table_version}
    assert meta.dataset["splits"]["train"]["rows"] + meta.metrics["rows"] == 200
    assert set(meta.metrics) >= {"accuracy", "macro_f1", "confusion_matrix", "per_class_recall"}
    assert len(meta.metrics["confusion_matrix"]) == 3
    card = (settings.registry_dir / "preference-lora" / "1" / CARD_FILE).read_text()
    for fragment in (str(tiny_model), result.base_sha256, "rank 8", "Accuracy", "| tie |",
                     "![Training loss](loss.png)"):
        assert fragment in card, fragment
    assert not (tmp_path / "lora-work" / "preference-lora").exists()
    model = load_registered_adapter(registry, "preference-lora", 1)
    assert head_state(model).keys() == HEAD_KEYS
    log = json.loads((settings.registry_dir / "preference-lora" / "1" / "training_log.json")
                     .read_text())
    assert len(log["losses"]) == FAST["max_steps"]

    spec.hyperparameters = spec.hyperparameters | {"min_accuracy": 1.0}
    second = run_lora_job(settings, spec, publish=events.append)
    assert (second.version, second.promoted) == (2, False) and "min_accuracy" in second.reasons[0]
    assert registry.alias("preference-lora") == 1 and events[-1].event == "registered"
