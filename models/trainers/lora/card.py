"""The markdown model card of a LoRA preference classifier version.

>>> from fti.models.trainers.lora.metrics import evaluate_multiclass
>>> metrics = evaluate_multiclass([0, 1, 2, 1], [0, 1, 1, 1]) | {"train_loss_final": 0.5}
>>> lora = {"rank": 8, "alpha": 16.0, "dropout": 0.1, "target_modules": ["query", "value"]}
>>> training = {"max_length": 128, "batch_size": 8, "grad_accum": 1, "lr": 0.001,
...             "weight_decay": 0.01, "warmup_ratio": 0.1, "seed": 42}
>>> params = {"lora": lora, "training": training, "trainable_parameters": 10,
...           "total_parameters": 1000, "base_model": "minilm", "base_sha256": "ab12",
...           "input_format": "[CLS] ...", "head_modules": ["classifier"], "device": "cpu",
...           "device_info": {"name": "cpu"}, "steps": 6, "steps_per_second": 3.0}
>>> split = {"rows": 4, "class_counts": {"A": 1, "B": 2, "tie": 1}}
>>> dataset = {"table": "preference_pairs", "table_version": 3, "rows": 8, "rows_sha256": "cd",
...            "seed": 42, "test_fraction": 0.5, "splits": {"train": split, "test": split}}
>>> card = render_lora_card("p", 1, metrics, params, dataset, {"passed": True}, "manual")
>>> card.splitlines()[0], "| tie | 0 | 1 | 0 |" in card, "(1.00%)" in card
('# Model card: p v1', True, True)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fti.events import WINNERS


def render_lora_card(
    name: str, version: int, metrics: dict[str, Any], params: dict[str, Any],
    dataset: dict[str, Any], gates: dict[str, Any], reason: str,
) -> str:
    """The markdown model card of a LoRA preference classifier version."""
    lora, training = params["lora"], params["training"]
    share = params["trainable_parameters"] / max(params["total_parameters"], 1)
    classes = list(WINNERS)
    cm = metrics["confusion_matrix"]
    lines = [
        f"# Model card: {name} v{version}", "",
        f"Created {datetime.now(UTC).isoformat()}; training triggered by: {reason}.", "",
        "## Intended use", "",
        "Predicts which of two responses to a prompt a person prefers (A, B or tie) from the "
        "text alone. A ranking aid for responses like those in the training data; not a judge "
        "of factual correctness or safety.", "",
        "## Base model", "",
        f"- Path: `{params['base_model']}`",
        f"- Weights sha256: `{params['base_sha256']}` (checked before training and loading)",
        f"- Input: `{params['input_format']}`, at most {training['max_length']} tokens "
        "(each part truncated fairly)", "",
        "## LoRA adapter", "",
        f"- rank {lora['rank']}, alpha {lora['alpha']}, dropout {lora['dropout']}, target "
        f"modules {lora['target_modules']}; head {params['head_modules']} trained in full "
        "and saved with the adapter",
        f"- Trainable parameters: {params['trainable_parameters']:,} of "
        f"{params['total_parameters']:,} ({share:.2%})", "",
        "## Training", "",
        f"- Device: {params['device']} ({params['device_info']})",
        f"- {params['steps']} optimizer steps at {params['steps_per_second']} steps/s; batch "
        f"{training['batch_size']} x {training['grad_accum']} accumulation; AdamW lr "
        f"{training['lr']}, weight decay {training['weight_decay']}; cosine schedule, warmup "
        f"ratio {training['warmup_ratio']}; seed {training['seed']}",
        f"- Final training loss: {metrics['train_loss_final']:.4f}", "",
        "## Training data", "",
        f"- Offline table `{dataset['table']}` version {dataset['table_version']}, "
        f"{dataset['rows']} pairs, rows sha256 `{dataset['rows_sha256']}`",
        f"- Split: random by pair_id hash, seed {dataset['seed']}, test fraction "
        f"{dataset['test_fraction']}", "",
        "| split | rows | " + " | ".join(classes) + " |", "| --- | ---: |" + " ---: |" * 3,
        *(f"| {part} | {s['rows']} | " + " | ".join(str(s["class_counts"][c]) for c in classes)
          + " |" for part, s in dataset["splits"].items()), "",
        "## Metrics on the test split", "",
        f"Accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}, "
        f"{metrics['rows']} pairs.", "",
        "| class | recall | precision | F1 |", "| --- | ---: | ---: | ---: |",
        *(f"| {c} | {metrics['per_class_recall'][c]:.4f} | "
          f"{metrics['per_class_precision'][c]:.4f} | {metrics['per_class_f1'][c]:.4f} |"
          for c in classes), "",
        "Confusion matrix (rows: actual, columns: predicted):", "",
        "| | " + " | ".join(classes) + " |", "| --- |" + " ---: |" * 3,
        *(f"| {c} | " + " | ".join(str(v) for v in cm[i]) + " |" for i, c in enumerate(classes)),
        "",
        "## Promotion gates", "",
        "Passed: promoted to champion." if gates["passed"] else
        "Failed; not promoted:\n\n" + "\n".join(f"- {r}" for r in gates["reasons"]), "",
        "## Limitations", "",
        "- Learns the preferences in its training data, including their biases; unseen topics "
        "or styles may be judged poorly.",
        "- Long texts are truncated; content beyond the token budget is not seen.",
        "- Ties are rare in the data, so tie recall is usually the weakest.",
    ]
    return "\n".join(lines) + "\n"
