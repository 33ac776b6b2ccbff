"""Preference pairs for the LoRA trainer: read from the offline table, split, tokenised and
batched.

``preference_pairs`` is read at one Lance version, deduplicated by pair_id and split by a seeded
hash of pair_id. A pair is encoded as ``INPUT_FORMAT`` with each part truncated fairly; a run's
micro-batches come in a seeded order that a resumed run repeats exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from fti.connectors.errors import OfflineTableError
from fti.connectors.offline.store import LanceOfflineStore
from fti.errors import FtiError
from fti.events import WINNERS
from fti.features.definitions import PREFERENCES_TABLE
from fti.features.training_data import dedupe_by_source, rows_sha256
from fti.models.trainers.lora.config import MIN_TRAIN_ROWS

_TEXT_COLUMNS = ("pair_id", "prompt", "response_a", "response_b", "label")

# --- the offline table -------------------------------------------------------------------


def read_preference_pairs(
    offline_dir: Path | str, version: int | None = None
) -> tuple[pa.Table, int]:
    """The ``preference_pairs`` table at one Lance version (default: latest), replays and
    repeated pair_ids removed (first kept), sorted by pair_id; and the version read."""
    try:
        raw, pinned = LanceOfflineStore(offline_dir).read(PREFERENCES_TABLE, version)
    except OfflineTableError as ex:
        raise FtiError(f"{ex}; run the preference flow first") from ex
    data = dedupe_by_source(raw)
    rows = data.append_column("__row", pa.array(np.arange(data.num_rows, dtype=np.int64)))
    first = rows.group_by(["pair_id"], use_threads=False).aggregate([("__row", "min")])
    return data.take(first["__row_min"]).sort_by("pair_id"), pinned


def split_by_pair_id(table: pa.Table, test_fraction: float, seed: int) -> tuple[pa.Table, pa.Table]:
    """Random (train, test) split by a seeded hash of pair_id: a pair keeps its side as the
    table grows, and the same seed gives the same split."""
    def bucket(pair_id: str) -> float:
        digest = hashlib.sha256(f"{seed}:{pair_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    is_test = pa.array([bucket(p) < test_fraction for p in table["pair_id"].to_pylist()])
    return table.filter(pc.invert(is_test)), table.filter(is_test)


def _table_sha256(table: pa.Table) -> str:
    return rows_sha256(table.select(_TEXT_COLUMNS))


def _split_stats(table: pa.Table) -> dict[str, Any]:
    labels = table["label"].to_pylist()
    return {"rows": table.num_rows, "rows_sha256": _table_sha256(table),
            "class_counts": {name: labels.count(c) for c, name in enumerate(WINNERS)}}


def _check_trainable(train: pa.Table, test: pa.Table) -> None:
    hint = "produce more preference pairs, or lower test_fraction"
    if train.num_rows < MIN_TRAIN_ROWS:
        raise FtiError(f"train split has {train.num_rows} rows, need {MIN_TRAIN_ROWS}; {hint}")
    if len(set(train["label"].to_pylist())) < 2:
        raise FtiError(f"train split ({train.num_rows} rows) has a single class; {hint}")
    if test.num_rows == 0:
        raise FtiError(f"test split is empty ({train.num_rows} train rows); {hint}")


# --- tokens and batches ------------------------------------------------------------------


@dataclass(frozen=True)
class EncodedPairs:
    """Token ids (one list per pair) and labels, ready for batching."""

    input_ids: list[list[int]]
    labels: list[int]
    pad_token_id: int
    #: Where response B starts in each pair, for models with token types (segment B = 1).
    b_starts: list[int] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def sha256(self) -> str:
        """Hash of ids, segments and labels; part of a run's fingerprint."""
        content = [self.input_ids, self.labels, self.b_starts]
        return hashlib.sha256(json.dumps(content).encode()).hexdigest()


def _fair_lengths(lengths: Sequence[int], budget: int) -> list[int]:
    """Share ``budget`` tokens: short parts keep everything, long parts split the rest.

    >>> _fair_lengths([5, 100, 100], 65)
    [5, 30, 30]
    """
    allotted = [0] * len(lengths)
    for rank, i in enumerate(sorted(range(len(lengths)), key=lambda i: lengths[i])):
        allotted[i] = min(lengths[i], budget // (len(lengths) - rank))
        budget -= allotted[i]
    return allotted


def encode_pairs(
    tokenizer: Any, rows: Iterable[Mapping[str, Any]], max_length: int
) -> EncodedPairs:
    """Encode rows (``prompt``, ``response_a``, ``response_b``, ``label``) as ``INPUT_FORMAT``,
    truncating each part fairly so that both responses are always seen. Models with token
    types (BERT) see response B as segment 1, so A and B are told apart by more than position."""
    rows = list(rows)
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    head = [start] if start is not None else []
    texts = [r[c] for r in rows for c in ("prompt", "response_a", "response_b")]
    pieces = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    ids, b_starts = [], []
    for i in range(len(rows)):
        parts = pieces[3 * i : 3 * i + 3]
        keep = _fair_lengths([len(p) for p in parts], max_length - len(head) - 3)
        ids.append(head + [t for p, k in zip(parts, keep, strict=True) for t in (*p[:k], sep)])
        b_starts.append(len(head) + keep[0] + keep[1] + 2)
    typed = "token_type_ids" in tokenizer.model_input_names
    labels = [int(r["label"]) for r in rows]
    return EncodedPairs(ids, labels, int(tokenizer.pad_token_id), b_starts if typed else None)


def _collate(
    pairs: EncodedPairs, indices: Sequence[int], device: torch.device
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Model inputs (right-padded to the longest pair) and labels of some pairs."""
    width = max(len(pairs.input_ids[i]) for i in indices)
    ids = torch.full((len(indices), width), pairs.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(indices), width), dtype=torch.long)
    types = torch.zeros((len(indices), width), dtype=torch.long)
    for row, i in enumerate(indices):
        length = len(pairs.input_ids[i])
        ids[row, :length] = torch.tensor(pairs.input_ids[i])
        mask[row, :length] = 1
        if pairs.b_starts is not None:
            types[row, pairs.b_starts[i] : length] = 1
    inputs = {"input_ids": ids, "attention_mask": mask}
    if pairs.b_starts is not None:
        inputs["token_type_ids"] = types
    labels = torch.tensor([pairs.labels[i] for i in indices], dtype=torch.long)
    return {k: v.to(device) for k, v in inputs.items()}, labels.to(device)


class _BatchOrder:
    """Micro-batch ``m`` of a run, the same whether or not the run was resumed."""

    def __init__(self, rows: int, batch_size: int, seed: int) -> None:
        self.rows, self.batch_size, self.seed = rows, batch_size, seed
        self.per_epoch = math.ceil(rows / batch_size)
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.long)

    def indices(self, micro_batch: int) -> list[int]:
        """Row indices of micro-batch ``micro_batch`` (epochs reshuffle with a seeded order)."""
        epoch, position = divmod(micro_batch, self.per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._order = epoch, torch.randperm(self.rows, generator=generator)
        return self._order[position * self.batch_size : (position + 1) * self.batch_size].tolist()
