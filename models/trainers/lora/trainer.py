"""The ``lora`` trainer: which of two responses to a prompt wins, or whether they tie, learned
by LoRA adapters on a small text encoder (`fti.models.trainers.lora.scorer`).

It fits ``preference`` models whose three features are text columns, in order: the prompt,
response A and response B; the label holds the three ``outcomes`` (default ``A``, ``B``,
``tie``). A fit writes the adapter and the head (safetensors), ``lora.json`` (hyperparameters,
the base model and its weights' sha256), the tokenizer (``tokenizer.json``) and
``signature.json`` with ``"input": "text"``: the model reads texts, not a float matrix.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from fti.features.dataset_records import Split
from fti.models.devices import torch_device
from fti.models.errors import TrainerError
from fti.models.trainers.base import (
    TEXT_INPUT,
    EpochCallback,
    FitResult,
    ModelInputs,
    table_inputs,
    write_signature,
)
from fti.models.trainers.lora.base_model import (
    BUNDLED,
    TOKENIZER_FILE,
    base_model_path,
    load_tokenizer,
    verify_base_model,
)
from fti.models.trainers.lora.loop import (
    PairBatches,
    lower_layers,
    optimizer_for,
    schedule,
    train_step,
)
from fti.models.trainers.lora.model import PairModel, load_pair_model, outcome_columns
from fti.models.trainers.lora.params import CONFIG_FILE, LoraParams
from fti.models.trainers.lora.scorer import build_scorer, save_scorer
from fti.models.trainers.lora.text import pair_texts

logger = logging.getLogger(__name__)


def outcome_indices(inputs: ModelInputs, table: Any, outcomes: tuple[Any, ...]) -> np.ndarray:
    """Each row's outcome: 0 first wins, 1 second wins, 2 tie."""
    index = {value: i for i, value in enumerate(outcomes)}
    values = inputs.target(table)
    unknown = sorted({repr(v) for v in values if v not in index})
    if unknown:
        raise TrainerError(f"label {inputs.label!r} holds {', '.join(unknown[:5])}, not among "
                           f"the outcomes {list(outcomes)}")
    return np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))


class LoraTrainer:
    """Fits and loads the pairwise LoRA model; hyperparameters as in `LoraParams`.

    >>> LoraTrainer(steps=5).params.steps
    5
    """

    kind = "lora"
    tasks: tuple[str, ...] = ("preference",)

    def __init__(self, **hyperparameters: Any) -> None:
        self.params = LoraParams(**hyperparameters)

    def fit(self, split: Split, inputs: ModelInputs, device: str, workdir: Path,
            progress: EpochCallback | None = None) -> FitResult:
        """Train ``params.steps`` steps on ``split.train`` (``progress(step, losses)`` after
        each), measure the validation split, and save the model into ``workdir``."""
        params = self.params
        inputs = inputs.with_classes(split)
        if inputs.task not in self.tasks or len(inputs.features) != 3:
            raise TrainerError(f"the lora trainer fits preference models of three text "
                               f"features (prompt, response A, response B); got a "
                               f"{inputs.task} model of {list(inputs.features)}")
        outcome_columns(params.outcomes, inputs.classes)
        texts = pair_texts(table_inputs(split.train, inputs.features))
        labels = outcome_indices(inputs, split.train, params.outcomes)
        if len(texts) == 0:
            raise TrainerError("cannot train on zero pairs")
        base = base_model_path(params.base_model)
        base_sha256 = verify_base_model(base, params.base_sha256)
        tokenizer = load_tokenizer(base / TOKENIZER_FILE, params.max_length)
        where = torch_device(device)
        scorer = build_scorer(base, params).to(where)
        batches = PairBatches(labels, params.batch_size, params.seed)
        optimizer = optimizer_for(scorer, params)
        scheduler = schedule(optimizer, params)
        losses: list[float] = []
        started = time.perf_counter()
        cache = lower_layers(scorer, tokenizer, texts, where, params)
        for step in range(params.steps):
            batch = cache.batch(*batches.batch(step))
            losses.append(train_step(scorer, optimizer, batch, params.max_grad_norm))
            scheduler.step()
            if progress is not None:
                progress(step + 1, {"train_loss": losses[-1]})
        seconds = time.perf_counter() - started
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        files = save_scorer(scorer, workdir)
        shutil.copyfile(base / TOKENIZER_FILE, workdir / TOKENIZER_FILE)
        config = {"params": params.as_dict() | {"base_model": params.base_model or BUNDLED},
                  "base_sha256": base_sha256, "features": list(inputs.features)}
        (workdir / CONFIG_FILE).write_text(json.dumps(config, indent=1))
        files += [workdir / TOKENIZER_FILE, workdir / CONFIG_FILE]
        signature = write_signature(workdir, self, inputs, files, input=TEXT_INPUT)
        validation = self._validation(workdir, split, inputs, device)
        trainable = sum(p.numel() for p in scorer.parameters() if p.requires_grad)
        logger.info("lora: %d steps in %.1f s, final loss %.4f, validation %s", params.steps,
                    seconds, losses[-1], validation)
        return FitResult(
            [str(f) for f in files] + [str(signature)], {"train_loss": losses},
            params.as_dict() | validation | {
                "device": device, "base_model": str(base), "base_sha256": base_sha256,
                "train_pairs": len(texts), "train_seconds": round(seconds, 3),
                "trainable_parameters": trainable,
                "total_parameters": sum(p.numel() for p in scorer.parameters()),
                "classes": list(inputs.classes or ()), "feature_columns": list(inputs.features),
            })

    def _validation(self, workdir: Path, split: Split, inputs: ModelInputs,
                    device: str) -> dict[str, Any]:
        """Accuracy of the saved model on the validation split (reloaded, as served)."""
        if split.validation.num_rows == 0:
            return {"val_accuracy": None}
        model = self.load(workdir, device)
        probabilities = model.predict(table_inputs(split.validation, inputs.features))
        predicted = np.asarray(inputs.classes, dtype=object)[probabilities.argmax(axis=1)]
        return {"val_accuracy": float(np.mean(predicted == inputs.target(split.validation)))}

    def load(self, path_dir: Path, device: str = "cpu") -> PairModel:
        """The model saved in ``path_dir`` (base weights sha256-checked; safetensors and JSON
        only)."""
        return load_pair_model(Path(path_dir), device)

