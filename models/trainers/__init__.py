"""Trainers behind one contract (`fti.models.trainers.protocol`), chosen by kind.

A kind is a built-in one (``xgboost``, ``mlp``, ``lora``) or ``module:Class`` naming a user's class
that implements the protocol. Each trainer module is imported only when its kind is asked
for, so XGBoost jobs never pay for importing torch.

>>> inputs = ModelInputs(("amount",), "churned", "binary")
>>> trainer_for("xgboost", inputs, {"n_estimators": 5}).kind
'xgboost'
>>> trainer_for("svm")
Traceback (most recent call last):
...
fti.errors.ConfigError: no trainer of kind 'svm'; known kinds: lora, mlp, xgboost (or ...)
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fti.errors import ConfigError
from fti.models.errors import TrainerError
from fti.models.registry import ModelRegistry
from fti.models.trainers.base import (
    BUILTIN_TRAINERS,
    SIGNATURE_FILE,
    ArtifactSignature,
    EpochCallback,
    FitResult,
    LoadedModel,
    ModelInputs,
    Trainer,
    artifact_dir,
    check_matrix,
    check_predictions,
    check_safe_files,
    kind_of,
    read_signature,
    table_inputs,
    table_matrix,
    write_signature,
)

__all__ = [
    "TRAINERS",
    "ArtifactSignature",
    "EpochCallback",
    "FitResult",
    "LoadedModel",
    "ModelInputs",
    "SignedModel",
    "Trainer",
    "kind_of",
    "load_artifacts",
    "load_version",
    "read_signature",
    "table_inputs",
    "table_matrix",
    "trainer_class",
    "trainer_for",
    "write_signature",
]

#: Trainer kind → "module:class" implementing it.
TRAINERS: dict[str, str] = BUILTIN_TRAINERS
#: Kinds registered by other jobs that this contract does not fit or load (none today).
_ELSEWHERE: dict[str, str] = {}


def _unknown(kind: str, why: str = "") -> ConfigError:
    known = ", ".join(sorted(TRAINERS))
    extra = f"; {_ELSEWHERE[kind]}" if kind in _ELSEWHERE else ""
    return ConfigError(
        f"no trainer of kind {kind!r}{why}; known kinds: {known} (or 'module:Class' of a class "
        f"implementing fti.models.trainers.protocol.Trainer){extra}"
    )


def trainer_class(kind: str | type) -> type:
    """The class of a trainer kind: a built-in kind, ``module:Class`` (imported), or a class.

    ConfigError when it cannot be found or lacks ``fit`` and ``load``.
    """
    if isinstance(kind, type):
        cls = kind
    else:
        target = TRAINERS.get(kind, kind)
        if ":" not in target:
            raise _unknown(kind)
        module_name, _, qualname = target.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError as ex:
            raise _unknown(kind, f" (cannot import {module_name}: {ex})") from ex
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                raise _unknown(kind, f" ({module_name} has no {qualname})")
        if not isinstance(obj, type):
            raise _unknown(kind, f" ({target} is not a class)")
        cls = obj
    missing = [name for name in ("fit", "load") if not callable(getattr(cls, name, None))]
    if missing:
        raise ConfigError(
            f"trainer {kind_of(cls)} lacks {', '.join(missing)}; see "
            "fti.models.trainers.protocol.Trainer"
        )
    return cls


def trainer_for(
    kind: str | type,
    inputs: ModelInputs | None = None,
    params: Mapping[str, Any] | None = None,
) -> Trainer:
    """A trainer of ``kind`` (built-in kind, ``module:Class`` or a class) built from the
    hyperparameters ``params`` (defaults when omitted).

    With ``inputs``, a trainer that lists its ``tasks`` is checked to support ``inputs.task``.
    """
    if inputs is not None and not isinstance(inputs, ModelInputs):
        raise ConfigError(
            f"trainer_for(kind, inputs, params): inputs must be ModelInputs, got "
            f"{type(inputs).__name__}; pass hyperparameters as params="
        )
    cls = trainer_class(kind)
    try:
        trainer = cls(**dict(params or {}))
    except TypeError as ex:
        raise ConfigError(f"trainer {kind_of(cls)} does not take hyperparameters "
                          f"{sorted(params or {})}: {ex}") from ex
    tasks = getattr(trainer, "tasks", None)
    if inputs is not None and tasks is not None and inputs.task not in tasks:
        raise ConfigError(
            f"trainer {kind_of(cls)} fits {', '.join(tasks)} models, not {inputs.task!r}"
        )
    return trainer


class SignedModel:
    """A loaded model with its signature: checks the matrix's columns before predicting and
    the shape of what comes back (for trainers that do not check themselves)."""

    def __init__(self, model: LoadedModel, signature: ArtifactSignature) -> None:
        self.model, self.signature = model, signature

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The model's predictions of rows of ``X`` (features in signature order)."""
        X = check_matrix(X, self.signature.features)
        out = self.model.predict(X)
        return check_predictions(out, len(X), self.signature.inputs, self.signature.kind)

    def __getattr__(self, name: str) -> Any:  # e.g. `booster` for SHAP importance
        if name in ("model", "signature"):  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.model, name)


def load_artifacts(directory: Path, kind: str | type | None = None) -> LoadedModel:
    """Load the model saved in ``directory`` by the trainer of ``kind`` (default: the kind in
    its ``signature.json``). Every file it names must be in a safe format; the result checks
    the columns of what it scores. Check sha256 first (`load_version` does)."""
    directory = Path(directory)
    signature = read_signature(directory) if (directory / SIGNATURE_FILE).is_file() else None
    if kind is None:
        if signature is None:
            raise TrainerError(f"{directory} has no {SIGNATURE_FILE}; name the trainer kind")
        kind = signature.kind
    if isinstance(kind, str) and kind in _ELSEWHERE:
        raise _unknown(kind, " to load")
    if signature is not None:
        check_safe_files(signature.files)
    model = trainer_for(kind).load(directory)
    if getattr(model, "signature", None) is not None or signature is None:
        return model  # the built-in loaders check columns themselves
    return SignedModel(model, signature)


def load_version(registry: ModelRegistry, model: str, version: int) -> LoadedModel:
    """Load a registered version with the trainer kind in its metadata (``params["trainer"]``,
    else its signature's kind, else "xgboost").

    Every artifact file the trainer reads, and ``signature.json``, has its sha256 checked by
    the registry first.
    """
    metadata = registry.get(model, version)
    kind = metadata.params.get("trainer")
    if SIGNATURE_FILE in metadata.files:
        signature_path = registry.artifact_path(model, version, SIGNATURE_FILE)
        signature = read_signature(signature_path.parent)
        check_safe_files(signature.files)
        names = list(signature.files)
        kind = kind or signature.kind
        paths = [signature_path] + [registry.artifact_path(model, version, n) for n in names]
    else:  # registered before signatures: the trainer's own list of files
        kind = kind or "xgboost"
        if kind in _ELSEWHERE:
            raise _unknown(kind, " to load")
        listed = getattr(trainer_class(kind), "artifact_files", None)
        if listed is None:
            raise TrainerError(f"{model} v{version} has no {SIGNATURE_FILE}; cannot tell which "
                               f"files trainer {kind} reads")
        names = [n for n in listed if n != SIGNATURE_FILE and n in metadata.files]
        if not names:
            raise TrainerError(f"{model} v{version} has none of the files trainer {kind} reads "
                               f"({list(listed)}); it has {sorted(metadata.files)}")
        paths = [registry.artifact_path(model, version, n) for n in names]
    return load_artifacts(artifact_dir(paths), kind)
