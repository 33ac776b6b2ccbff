"""The trainer protocol: how to bring your own model to fti.

A model declaration (`fti.features.project.Model`) names its trainer: a built-in kind
(``"xgboost"``, ``"mlp"``) or a class of yours. The registry records a class as
``"module:Class"`` (`Model.trainer_kind`) and imports it again to load a version, so the class
must live at module level in an importable module. It needs:

``__init__(**params)``
    The model's ``params`` (hyperparameters) as keyword arguments, each with a default: the
    registry builds an instance without any to load a version.
``kind`` (str)
    A short name for logs. The registry records the kind of `kind_of` the trainer: the
    built-in kind, else ``module:Class``.
``tasks`` (tuple of str, optional)
    The tasks it fits (``binary``, ``multiclass``, ``regression``, ``preference``); checked
    by `trainer_for` when given.
``fit(split, inputs, device, workdir, progress=None) -> FitResult``
    Learn ``inputs.features`` → ``inputs.label`` from ``split.train`` (``inputs.matrix`` and
    ``inputs.target`` read the tables; ``split.validation`` is there for early stopping),
    write the artifacts into ``workdir`` in safe formats only (``.json``, ``.safetensors``,
    ``.ubj``; never pickle or joblib), write ``signature.json`` with `write_signature`, and
    return every file written (signature included) in `FitResult.files`. ``progress(epoch,
    losses)`` may be called after each epoch. ``params`` of the result are recorded in the
    registry; put ``device`` (where it ran) there.
``load(path_dir) -> LoadedModel``
    Read the artifacts back (never executing code from them: no ``pickle``, and
    ``torch.load(weights_only=True)`` if ``torch.load`` at all). The loaded model's
    ``predict(X)`` takes a float32 matrix of ``len(inputs.features)`` columns in signature
    order and returns: binary P(label 1) of shape (rows,); multiclass probabilities
    (rows, classes) in ``inputs.classes`` order; regression the values (rows,).

`fti.models.trainers.load_artifacts` (and the registry's `load_version`, the serving
`load_serving_model`) wraps what ``load`` returns so a matrix of the wrong width is refused
with the expected column names, and an output of the wrong shape is an error.

A complete example, a trainer predicting the train mean (plus a ``shift``) of a regression
target, saved as JSON:

>>> import json, tempfile
>>> from pathlib import Path
>>> import numpy as np, pyarrow as pa
>>> from fti.features.dataset_records import Split
>>> from fti.models.trainers import FitResult, ModelInputs, load_artifacts, trainer_for
>>> from fti.models.trainers import write_signature
>>> class MeanModel:
...     def __init__(self, mean: float) -> None:
...         self.mean = mean
...     def predict(self, X: np.ndarray) -> np.ndarray:
...         return np.full(len(X), self.mean, dtype=np.float32)
>>> class MeanRegressor:
...     kind = "mean"
...     tasks = ("regression",)
...     def __init__(self, shift: float = 0.0) -> None:
...         self.shift = shift
...     def fit(self, split, inputs, device, workdir, progress=None):
...         mean = float(np.mean(inputs.target(split.train))) + self.shift
...         model = Path(workdir) / "mean.json"
...         model.write_text(json.dumps({"mean": mean}))
...         signature = write_signature(workdir, self, inputs, [model])
...         return FitResult([str(model), str(signature)], params={"mean": mean, "device": "cpu"})
...     def load(self, path_dir):
...         return MeanModel(json.loads((Path(path_dir) / "mean.json").read_text())["mean"])
>>> table = pa.table({"x": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 6.0]})
>>> inputs = ModelInputs(("x",), "y", "regression")
>>> trainer = trainer_for(MeanRegressor, inputs, {"shift": 1.0})
>>> workdir = Path(tempfile.mkdtemp())
>>> sorted(Path(f).name for f in trainer.fit(Split(table, table, table), inputs, "cpu",
...                                          workdir).files)
['mean.json', 'signature.json']
>>> model = load_artifacts(workdir, MeanRegressor)
>>> model.predict(np.zeros((2, 1), dtype=np.float32)).tolist()
[4.0, 4.0]
>>> model.predict(np.zeros((2, 3), dtype=np.float32))
Traceback (most recent call last):
...
fti.models.errors.TrainerError: expected a matrix of 1 columns ['x'] (in this order), ...
"""

from __future__ import annotations

from fti.models.trainers.base import (
    SAFE_SUFFIXES,
    SIGNATURE_FILE,
    ArtifactSignature,
    EpochCallback,
    FitResult,
    LoadedModel,
    ModelInputs,
    Trainer,
    kind_of,
    read_signature,
    write_signature,
)

__all__ = [
    "SAFE_SUFFIXES",
    "SIGNATURE_FILE",
    "ArtifactSignature",
    "EpochCallback",
    "FitResult",
    "LoadedModel",
    "ModelInputs",
    "Trainer",
    "kind_of",
    "read_signature",
    "write_signature",
]
