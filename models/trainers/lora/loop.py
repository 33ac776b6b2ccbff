"""The training loop of the pairwise scorer: its batches, its step and its schedule.

The pool of training examples is every pair and the same pair with A and B exchanged (its
label exchanged too), so the scorer learns no side. Batches are drawn from the pool in a
seeded order, a fresh permutation per pass. The frozen lower layers run once per text
(`LowerCache`); `train_step` is one AdamW step on one batch through the adapted layers.
`bench/lora_steps.py` times it against a bare PEFT loop on the same batches.

>>> batches = PairBatches(np.array([0, 1, 2]), batch_size=6, seed=0)
>>> rows, swapped, outcomes = batches.batch(0)  # one pass: each pair as is and swapped
>>> sorted(zip(rows.tolist(), swapped.tolist(), outcomes.tolist()))
[(0, False, 0), (0, True, 1), (1, False, 1), (1, True, 0), (2, False, 2), (2, True, 2)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch.optim.lr_scheduler import LambdaLR

from fti.models.trainers.lora.params import LoraParams
from fti.models.trainers.lora.scorer import PairScorer
from fti.models.trainers.lora.text import PairTexts, encode

#: The label of a pair once A and B are exchanged: first wins <-> second wins, tie stays.
SWAP = np.array([1, 0, 2])


class PairBatches:
    """Seeded batches over the pairs and their swaps: ``batch(step)`` is (pair rows, swapped
    flags, outcome indices 0 first / 1 second / 2 tie)."""

    def __init__(self, labels: np.ndarray, batch_size: int, seed: int) -> None:
        self.labels = np.asarray(labels, dtype=np.int64)
        self.batch_size, self.seed = batch_size, seed
        self.size = 2 * len(self.labels)
        self._orders: dict[int, np.ndarray] = {}

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            self._orders = {epoch: np.random.default_rng([self.seed, epoch]).permutation(
                self.size)}
        return self._orders[epoch]

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The examples of optimizer step ``step`` (from 0)."""
        start = step * self.batch_size
        picks = np.array([self._order((start + i) // self.size)[(start + i) % self.size]
                          for i in range(min(self.batch_size, self.size))], dtype=np.int64)
        rows, swapped = picks % len(self.labels), picks >= len(self.labels)
        outcomes = np.where(swapped, SWAP[self.labels[rows]], self.labels[rows])
        return rows, swapped, outcomes


def batch_texts(texts: PairTexts, rows: Sequence[int], swapped: Sequence[bool]) -> PairTexts:
    """The pairs at ``rows``, each with its responses exchanged where ``swapped``."""
    picked = texts.take(rows)
    first = [b if s else a for a, b, s in zip(picked.first, picked.second, swapped, strict=True)]
    second = [a if s else b for a, b, s in zip(picked.first, picked.second, swapped, strict=True)]
    return PairTexts(picked.prompts, first, second)


@dataclass(frozen=True)
class TrainingBatch:
    """One step's lower hidden states (every first response, then every second one), their
    attention mask and the outcome indices."""

    hidden: torch.Tensor
    attention_mask: torch.Tensor
    outcomes: torch.Tensor


class LowerCache:
    """The frozen lower layers' output for both responses of every training pair, computed
    once in chunks of ``chunk`` pairs; `batch` assembles a step's examples from it."""

    def __init__(self, scorer: PairScorer, tokenizer: object, texts: PairTexts,
                 device: torch.device, chunk: int = 64) -> None:
        firsts, seconds, masks_first, masks_second = [], [], [], []
        scorer.eval()
        for start in range(0, len(texts), chunk):
            rows = list(range(start, min(start + chunk, len(texts))))
            encoded = encode(tokenizer, texts.take(rows)).to(device)
            hidden = scorer.lower(encoded)
            first, second = hidden.chunk(2, dim=0)
            mask_first, mask_second = encoded.attention_mask.chunk(2, dim=0)
            firsts.append(first), seconds.append(second)
            masks_first.append(mask_first), masks_second.append(mask_second)
        width = max(h.shape[1] for h in firsts)
        self.first, self.second = _stack(firsts, width), _stack(seconds, width)
        self.mask_first, self.mask_second = _stack(masks_first, width), _stack(masks_second, width)

    def batch(self, rows: np.ndarray, swapped: np.ndarray, outcomes: np.ndarray) -> TrainingBatch:
        """The examples at ``rows`` (responses exchanged where ``swapped``), trimmed to their
        longest text."""
        index = torch.as_tensor(rows)
        flip = torch.as_tensor(swapped).view(-1, 1)
        mask_a = torch.where(flip, self.mask_second[index], self.mask_first[index])
        mask_b = torch.where(flip, self.mask_first[index], self.mask_second[index])
        hidden_a = torch.where(flip.unsqueeze(-1), self.second[index], self.first[index])
        hidden_b = torch.where(flip.unsqueeze(-1), self.first[index], self.second[index])
        mask = torch.cat([mask_a, mask_b])
        width = int(mask.sum(dim=1).max())
        return TrainingBatch(torch.cat([hidden_a, hidden_b])[:, :width], mask[:, :width],
                             torch.as_tensor(outcomes, device=mask.device))


class LowerOnTheFly:
    """`LowerCache`'s interface without the cache: each step encodes its texts and runs the
    frozen lower layers again (for training sets too large to hold their hidden states)."""

    def __init__(self, scorer: PairScorer, tokenizer: object, texts: PairTexts,
                 device: torch.device) -> None:
        self.scorer, self.tokenizer, self.texts, self.device = scorer, tokenizer, texts, device

    def batch(self, rows: np.ndarray, swapped: np.ndarray, outcomes: np.ndarray) -> TrainingBatch:
        """The examples at ``rows`` (responses exchanged where ``swapped``)."""
        encoded = encode(self.tokenizer, batch_texts(self.texts, rows.tolist(), swapped.tolist()))
        encoded = encoded.to(self.device)
        self.scorer.eval()
        return TrainingBatch(self.scorer.lower(encoded), encoded.attention_mask,
                             torch.as_tensor(outcomes, device=self.device))


def lower_layers(scorer: PairScorer, tokenizer: object, texts: PairTexts, device: torch.device,
                 params: LoraParams) -> LowerCache | LowerOnTheFly:
    """The cache of the lower layers' output when it fits in ``params.cache_mb`` (float32
    hidden states of both responses of every pair at ``max_length``), else on the fly."""
    hidden = int(scorer.head.in_features)
    size_mb = 2 * len(texts) * params.max_length * hidden * 4 / 2**20
    if size_mb <= params.cache_mb:
        return LowerCache(scorer, tokenizer, texts, device, params.eval_batch_size)
    return LowerOnTheFly(scorer, tokenizer, texts, device)


def _stack(parts: list[torch.Tensor], width: int) -> torch.Tensor:
    """Concatenate along rows, right-padding dim 1 with zeros to ``width``."""
    padded = [F.pad(p, (0, 0, 0, width - p.shape[1]) if p.ndim == 3 else (0, width - p.shape[1]))
              for p in parts]
    return torch.cat(padded)


def optimizer_for(scorer: PairScorer, params: LoraParams) -> torch.optim.Optimizer:
    """AdamW over the trainable weights (the adapters and the head)."""
    trainable = [p for p in scorer.parameters() if p.requires_grad]
    return torch.optim.AdamW(trainable, lr=params.lr, weight_decay=params.weight_decay)


def schedule(optimizer: torch.optim.Optimizer, params: LoraParams) -> LambdaLR:
    """Linear warmup over ``warmup_steps``, then a linear decay to zero at ``steps``."""
    warmup, total = params.warmup_steps, params.steps

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return LambdaLR(optimizer, factor)


def train_step(scorer: PairScorer, optimizer: torch.optim.Optimizer, batch: TrainingBatch,
               max_grad_norm: float) -> float:
    """One optimizer step on ``batch``; returns its cross-entropy loss."""
    scorer.train()
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(scorer.upper(batch.hidden, batch.attention_mask), batch.outcomes)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(
        [p for group in optimizer.param_groups for p in group["params"]], max_grad_norm)
    optimizer.step()
    return float(loss.detach())
