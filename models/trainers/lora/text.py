"""Pairs of texts as the scorer reads them: each response encoded together with its prompt
(``[CLS] prompt [SEP] response [SEP]``), the first responses of a batch then the second ones,
so one forward pass scores both sides of every pair.

>>> texts = pair_texts(np.array([["Hi?", "Hello!", None]], dtype=object))
>>> texts.prompts, texts.first, texts.second
(['Hi?'], ['Hello!'], [''])
>>> texts.swapped().first
['']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fti.models.errors import TrainerError


@dataclass(frozen=True)
class PairTexts:
    """Prompts and the two responses to each (``first`` is response A, ``second`` B)."""

    prompts: list[str]
    first: list[str]
    second: list[str]

    def __len__(self) -> int:
        return len(self.prompts)

    def swapped(self) -> PairTexts:
        """The same pairs with the two responses exchanged."""
        return PairTexts(self.prompts, self.second, self.first)

    def take(self, rows: Sequence[int]) -> PairTexts:
        """The pairs at ``rows``, in that order."""
        return PairTexts([self.prompts[i] for i in rows], [self.first[i] for i in rows],
                         [self.second[i] for i in rows])


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def pair_texts(X: np.ndarray) -> PairTexts:
    """The pairs of an (rows, 3) matrix of prompt, response A, response B (None as "")."""
    X = np.asarray(X, dtype=object)
    if X.ndim != 2 or X.shape[1] != 3:
        raise TrainerError(f"expected (rows, 3) texts: prompt, response A, response B; got "
                           f"shape {X.shape}")
    return PairTexts([_text(v) for v in X[:, 0]], [_text(v) for v in X[:, 1]],
                     [_text(v) for v in X[:, 2]])


@dataclass(frozen=True)
class Encoded:
    """Token ids, attention mask and token types of 2 x pairs sequences: every pair's first
    response with its prompt, then every second one."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor

    def to(self, device: torch.device) -> Encoded:
        """The tensors on ``device``."""
        return Encoded(self.input_ids.to(device), self.attention_mask.to(device),
                       self.token_type_ids.to(device))


def encode(tokenizer: Any, texts: PairTexts) -> Encoded:
    """Encode both sides of ``texts`` in one padded batch (first responses, then second)."""
    prompts = texts.prompts + texts.prompts
    encodings = tokenizer.encode_batch(list(zip(prompts, texts.first + texts.second,
                                                strict=True)))

    def tensor(field: str) -> torch.Tensor:
        return torch.tensor([getattr(e, field) for e in encodings], dtype=torch.long)

    return Encoded(tensor("ids"), tensor("attention_mask"), tensor("type_ids"))
