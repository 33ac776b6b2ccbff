"""Model specs: which trainer, on which feature view, with which hyperparameters and gates.

A spec is what ``run_training_job(settings, model=...)`` looks up by name. The catalogue
`SPECS` maps each known model name to a function of the settings, so the settings the user
gave (``training.*``: seed, device, gates, XGBoost parameters) flow into every spec.

>>> from fti.settings import Settings
>>> spec = spec_for("fraud-mlp", Settings())
>>> spec.kind, spec.view, spec.hyperparameters["hidden_sizes"]
('mlp', 'fraud_v1', [64, 32])
>>> spec_for("fraud-xgb", Settings()).hyperparameters["n_estimators"]
200
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from fti.errors import ConfigError
from fti.features.training_data import VIEW_NAME
from fti.settings import Settings

TrainerKind = Literal["xgboost", "mlp", "lora"]
KINDS: tuple[str, ...] = ("xgboost", "mlp", "lora")


@dataclass(frozen=True)
class ModelSpec:
    """One trainable model: its name, feature view, trainer kind, hyperparameters and gates.

    ``device`` is a request for `fti.models.devices.select_device` ("auto" picks the best present).

    >>> ModelSpec("m", "fraud_v1", "mlp").device
    'auto'
    """

    name: str
    view: str
    kind: TrainerKind
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    min_auc: float = 0.75
    max_slice_gap: float | None = None
    max_auc_regression: float = 0.02
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(
                f"model spec {self.name!r}: trainer kind must be one of {list(KINDS)}, "
                f"got {self.kind!r}"
            )


def _gates(settings: Settings) -> dict[str, Any]:
    t = settings.training
    return {"min_auc": t.min_auc, "max_auc_regression": t.max_auc_regression,
            "max_slice_gap": t.max_slice_gap, "device": t.device}


def fraud_xgb(settings: Settings) -> ModelSpec:
    """Gradient-boosted trees on ``fraud_v1``; hyperparameters from ``settings.training``."""
    t = settings.training
    hyperparameters = {
        "n_estimators": t.n_estimators,
        "max_depth": t.max_depth,
        "learning_rate": t.learning_rate,
        "seed": t.seed,
    }
    return ModelSpec("fraud-xgb", VIEW_NAME, "xgboost", hyperparameters, **_gates(settings))


def fraud_mlp(settings: Settings) -> ModelSpec:
    """A small PyTorch MLP on ``fraud_v1``, seeded from ``settings.training.seed``."""
    hyperparameters = {
        "hidden_sizes": [64, 32],
        "dropout": 0.1,
        "epochs": 40,
        "batch_size": 128,
        "lr": 1e-2,
        "weight_decay": 1e-4,
        "patience": 8,
        "seed": settings.training.seed,
    }
    return ModelSpec("fraud-mlp", VIEW_NAME, "mlp", hyperparameters, **_gates(settings))


def preference_lora(settings: Settings) -> ModelSpec:
    """A PEFT LoRA adapter trained by `fti.models.trainers.lora.run_lora_job`."""
    hyperparameters = {"seed": settings.training.seed}
    return ModelSpec(
        "preference-lora", "preferences_v1", "lora", hyperparameters, **_gates(settings)
    )


#: Every known model name and the function that builds its spec from the settings.
SPECS: dict[str, Callable[[Settings], ModelSpec]] = {
    "fraud-xgb": fraud_xgb,
    "fraud-mlp": fraud_mlp,
    "preference-lora": preference_lora,
}


def spec_for(name: str, settings: Settings) -> ModelSpec:
    """The spec of model ``name`` under ``settings``; ConfigError naming the known models.

    >>> spec_for("cnn", Settings())
    Traceback (most recent call last):
    ...
    fti.errors.ConfigError: unknown model 'cnn'; known models: fraud-mlp, fraud-xgb, preference-lora
    """
    build = SPECS.get(name)
    if build is None:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(sorted(SPECS))}")
    return build(settings)


def apply_params(spec: ModelSpec, params: Mapping[str, Any]) -> ModelSpec:
    """``spec`` with ``params`` overriding its hyperparameters.

    >>> from fti.settings import Settings
    >>> from fti.models.specs import spec_for
    >>> spec = apply_params(spec_for("fraud-xgb", Settings()), {"max_depth": 7})
    >>> spec.hyperparameters["max_depth"], spec.hyperparameters["n_estimators"]
    (7, 200)
    """
    return replace(spec, hyperparameters=dict(spec.hyperparameters) | dict(params))
