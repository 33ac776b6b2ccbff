"""Helpers of the LoRA tests: a tiny random BERT encoder (seconds to train, built from a
config, with the bundled MiniLM's tokenizer) and pair tables from the example's scenario."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa

from fti.features.dataset_records import Split
from fti.models.trainers.lora.base_model import TOKENIZER_FILE, bundled_model_path
from fti.ops.scenario import load_scenario

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "preferences"
TEXT_COLUMNS = ("prompt", "response_a", "response_b")


def tiny_encoder(directory: Path) -> Path:
    """Save a 2-layer BERT of hidden size 32 (random, seeded) into ``directory``."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=128)
    BertModel(config).save_pretrained(directory, safe_serialization=True)
    shutil.copyfile(bundled_model_path() / TOKENIZER_FILE, directory / TOKENIZER_FILE)
    return directory


def scenario_pairs(count: int, seed: int) -> list[dict]:
    """Valid pairs of the preference example's scenario."""
    scenario = load_scenario(EXAMPLE)
    return [json.loads(r.value) for r in scenario.generate(count, count + 1, 0.0, seed)]


def pair_table(pairs: list[dict]) -> pa.Table:
    """Pairs as a training table: the three text columns and the label ``winner``."""
    return pa.table({c: [p[c] for p in pairs] for c in (*TEXT_COLUMNS, "winner")})


def pair_split(train: int, validation: int, test: int, seed: int = 1) -> Split:
    """A split of scenario pairs (train, validation, test rows)."""
    pairs = scenario_pairs(train + validation + test, seed)
    return Split(pair_table(pairs[:train]), pair_table(pairs[train:train + validation]),
                 pair_table(pairs[train + validation:]))


def renamed(split: Split, columns: dict[str, str]) -> Split:
    """``split`` with its columns renamed (e.g. to a view's column names)."""
    def rename(table: pa.Table) -> pa.Table:
        return table.rename_columns([columns.get(c, c) for c in table.column_names])

    return Split(rename(split.train), rename(split.validation), rename(split.test))


#: Quick hyperparameters for the tiny encoder.
TINY_PARAMS = {"steps": 20, "batch_size": 16, "max_length": 48, "lr": 5e-3}
