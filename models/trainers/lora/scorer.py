"""The pairwise scorer: an encoder with LoRA adapters on its top layers and a small head.

Each response is encoded with its prompt and mean-pooled; the head gives it a score ``s``
and a tie tendency ``t``. A pair's logits are ``[s_A, s_B, (s_A + s_B + t_A + t_B) / 2]``:
the tie logit is the mean of the two scores plus the mean tie tendency, so a tie wins when
the two scores are close, and exchanging A and B exchanges their probabilities exactly.

>>> scores = torch.tensor([[2.0, 0.5], [2.0, 0.5], [2.0, 0.5], [-1.0, 0.5]])
>>> pair_logits(scores).tolist()  # pair 1: equal scores, a tie; pair 2: A far ahead
[[2.0, 2.0, 2.5], [2.0, -1.0, 1.0]]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from fti.models.errors import TrainerError
from fti.models.trainers.lora.base_model import load_encoder
from fti.models.trainers.lora.params import ADAPTER_FILE, HEAD_FILE, LoraParams
from fti.models.trainers.lora.text import Encoded


def pair_logits(scores: torch.Tensor) -> torch.Tensor:
    """(pairs, 3) logits of first wins, second wins, tie from (2 x pairs, 2) response outputs
    (every pair's first response, then every second one; columns score, tie tendency)."""
    first, second = scores.chunk(2, dim=0)
    tie = (first[:, 0] + second[:, 0] + first[:, 1] + second[:, 1]) / 2
    return torch.stack([first[:, 0], second[:, 0], tie], dim=1)


class PairScorer(nn.Module):
    """The encoder (with LoRA adapters on its top layers) and the head scoring each encoded
    response.

    The layers below the adapted ones are frozen and always run as in inference, so their
    output (`lower`) is a fixed function of the text: training computes it once per text and
    runs only the adapted layers (`upper`) at each step.
    """

    def __init__(self, encoder: Any, hidden_size: int, first_adapted: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(hidden_size, 2)
        self.first_adapted = first_adapted

    @property
    def _model(self) -> Any:
        """The encoder under its PEFT wrapper (embeddings, layers, config)."""
        return self.encoder.get_base_model()

    def _layers(self) -> Any:
        return self._model.encoder.layer

    def train(self, mode: bool = True) -> PairScorer:
        """Training mode for the adapted layers and the head; the frozen lower layers and
        the embeddings stay in inference mode (no dropout), so their output is cached."""
        super().train(mode)
        self._model.embeddings.eval()
        for layer in self._layers()[:self.first_adapted]:
            layer.eval()
        return self

    def _mask(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        from transformers.masking_utils import create_bidirectional_mask

        return create_bidirectional_mask(config=self._model.config, inputs_embeds=hidden,
                                         attention_mask=attention_mask)

    def lower(self, batch: Encoded) -> torch.Tensor:
        """Hidden states of ``batch`` after the frozen layers (no gradient)."""
        with torch.no_grad():
            hidden = self._model.embeddings(input_ids=batch.input_ids,
                                            token_type_ids=batch.token_type_ids)
            mask = self._mask(hidden, batch.attention_mask)
            for layer in self._layers()[:self.first_adapted]:
                hidden = layer(hidden, mask)
        return hidden

    def upper(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(pairs, 3) logits from the lower hidden states of every first response, then every
        second one: the adapted layers, mean pooling over the tokens, the head."""
        mask = self._mask(hidden, attention_mask)
        for layer in self._layers()[self.first_adapted:]:
            hidden = layer(hidden, mask)
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return pair_logits(self.head(pooled))

    def forward(self, batch: Encoded) -> torch.Tensor:
        """(pairs, 3) logits of the pairs of ``batch``."""
        return self.upper(self.lower(batch), batch.attention_mask)


def adapted_layers(encoder: Any, top_layers: int) -> list[int]:
    """Indices of the top ``top_layers`` layers of ``encoder`` (all when it has fewer)."""
    count = int(encoder.config.num_hidden_layers)
    return list(range(max(0, count - top_layers), count))


def build_scorer(base: Path, params: LoraParams) -> PairScorer:
    """The base encoder at ``base`` with fresh LoRA adapters (seeded) and a fresh head; only
    the adapters and the head are trainable."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(params.seed)
    encoder = load_encoder(base)
    if not hasattr(getattr(encoder, "encoder", None), "layer"):
        raise TrainerError(f"lora: {base} is not a BERT-like encoder (encoder.layer); the "
                           "pairwise scorer adapts the top layers of one")
    config = LoraConfig(r=params.rank, lora_alpha=params.alpha, lora_dropout=params.dropout,
                        target_modules=list(params.target_modules),
                        layers_to_transform=adapted_layers(encoder, params.top_layers))
    layers = adapted_layers(encoder, params.top_layers)
    try:
        adapted = get_peft_model(encoder, config)
    except ValueError as ex:
        raise TrainerError(f"lora: cannot adapt {base} with target modules "
                           f"{list(params.target_modules)}: {ex}") from ex
    return PairScorer(adapted, int(encoder.config.hidden_size), layers[0])


def save_scorer(scorer: PairScorer, directory: Path) -> list[Path]:
    """Write the adapter and the head as safetensors into ``directory``; return the paths."""
    from peft import get_peft_model_state_dict

    adapter = {k: v.detach().cpu().contiguous()
               for k, v in get_peft_model_state_dict(scorer.encoder).items()}
    head = {k: v.detach().cpu().contiguous() for k, v in scorer.head.state_dict().items()}
    paths = [directory / ADAPTER_FILE, directory / HEAD_FILE]
    save_file(adapter, paths[0])
    save_file(head, paths[1])
    return paths


def load_scorer(base: Path, params: LoraParams, directory: Path) -> PairScorer:
    """The scorer saved in ``directory`` on the base encoder at ``base``, in eval mode; every
    adapter weight must be restored (TrainerError otherwise)."""
    from peft import set_peft_model_state_dict

    scorer = build_scorer(base, params)
    adapter = load_file(directory / ADAPTER_FILE)
    outcome = set_peft_model_state_dict(scorer.encoder, adapter)
    expected = {k for k in scorer.encoder.state_dict() if "lora_" in k}
    missing = sorted(k for k in expected if k in set(outcome.missing_keys))
    if outcome.unexpected_keys or missing:
        raise TrainerError(f"{directory / ADAPTER_FILE} does not fit the base model: unexpected "
                           f"{list(outcome.unexpected_keys)[:3]}, missing {missing[:3]}")
    try:
        scorer.head.load_state_dict(load_file(directory / HEAD_FILE), strict=True)
    except RuntimeError as ex:
        raise TrainerError(f"{directory / HEAD_FILE} does not fit the base model: {ex}") from ex
    return scorer.eval()
