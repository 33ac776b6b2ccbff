"""The trainer contract: what a model learns from, how a fit is reported, how artifacts load.

`ModelInputs` names a model's feature columns (in order), its label, its task and, for a
classification, its classes. A trainer fits one `Split` on one device, writes its final
artifacts in safe formats only (XGBoost UBJ, safetensors, JSON; never pickle) into ``workdir``
together with a ``signature.json`` (`write_signature`) describing the inputs, and reports them
in a `FitResult`. `Trainer.load` reads them back from a directory, so a candidate is scored
from its work directory and a champion from its registry version the same way. The protocol a
user's own trainer implements is documented in `fti.models.trainers.protocol`.

>>> inputs = ModelInputs(["x", "y"], "label", "binary")
>>> inputs.features, inputs.task
(('x', 'y'), 'binary')
>>> check_matrix(np.zeros((2, 3), dtype=np.float32), inputs.features)
Traceback (most recent call last):
...
fti.models.errors.TrainerError: expected a matrix of 2 columns ['x', 'y'] (in this order), ...
>>> artifact_dir(["/tmp/run/model.safetensors", "/tmp/run/mlp.json"])
PosixPath('/tmp/run')
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fti.features.dataset_records import Split
from fti.features.project.model import TASKS
from fti.models.errors import TrainerError

#: Called after each finished epoch (or round) with its number (from 1) and its losses.
EpochCallback = Callable[[int, dict[str, float]], None]

#: The file beside every artifact that says what the model reads and returns.
SIGNATURE_FILE = "signature.json"
SIGNATURE_FORMAT = "fti-signature/1"
#: The signature's ``input`` of a model that reads text columns as they are (no float matrix).
TEXT_INPUT = "text"
#: File suffixes an artifact may have: formats that load without executing code.
SAFE_SUFFIXES = frozenset({".json", ".ubj", ".safetensors"})
#: Built-in trainer kind → "module:Class" implementing it (imported only when asked for).
BUILTIN_TRAINERS: dict[str, str] = {
    "lora": "fti.models.trainers.lora.trainer:LoraTrainer",
    "mlp": "fti.models.trainers.mlp:MLPTrainer",
    "xgboost": "fti.models.trainers.xgboost:XGBoostTrainer",
}
#: What `predict` returns per task, as recorded in the signature.
OUTPUTS: dict[str, str] = {
    "binary": "(rows,) probability of the positive class (label 1)",
    "multiclass": "(rows, classes) probabilities, columns in the order of `classes`",
    "regression": "(rows,) predicted values",
    "preference": "(rows, classes) probabilities, columns in the order of `classes`",
}
_CLASSIFICATION = frozenset({"multiclass", "preference"})


def _plain(value: Any) -> Any:
    """A numpy scalar as the python value JSON can hold."""
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class ModelInputs:
    """What a model learns from: ``features`` (matrix columns, in order), the ``label`` column,
    the ``task`` and, for multiclass, the class values (column j of the probabilities is
    ``classes[j]``; None lets the trainer take the sorted values of the train and validation
    labels).

    >>> ModelInputs(["a"], "y", "multiclass", ["cat", "dog"]).classes
    ('cat', 'dog')
    >>> ModelInputs(["a"], "y", "ranking")
    Traceback (most recent call last):
    ...
    fti.models.errors.TrainerError: task 'ranking' is unknown; use one of binary, multiclass, ...
    """

    features: tuple[str, ...]
    label: str
    task: str = "binary"
    classes: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.features, str):
            raise TrainerError(
                f"features must be a sequence of column names, got {self.features!r}"
            )
        features = tuple(str(name) for name in self.features)
        object.__setattr__(self, "features", features)
        if not features:
            raise TrainerError("a model needs at least one feature column")
        repeated = sorted({name for name in features if features.count(name) > 1})
        if repeated:
            raise TrainerError(f"feature columns {repeated} appear more than once")
        if self.label in features:
            raise TrainerError(f"the label {self.label!r} is also a feature column")
        if self.task not in TASKS:
            raise TrainerError(f"task {self.task!r} is unknown; use one of {', '.join(TASKS)}")
        if self.classes is not None:
            classes = tuple(_plain(c) for c in self.classes)
            if len(set(classes)) != len(classes):
                raise TrainerError(f"classes {list(classes)} hold a value more than once")
            object.__setattr__(self, "classes", classes)

    def matrix(self, table: pa.Table) -> np.ndarray:
        """The feature columns of ``table`` as a float32 matrix (nulls as NaN)."""
        return table_matrix(table, self.features)

    def target(self, table: pa.Table) -> np.ndarray:
        """The label column of ``table`` as the task needs it: binary 0/1 as int8, regression
        float64, multiclass the raw class values (object array)."""
        if self.label not in table.column_names:
            raise TrainerError(
                f"table lacks the label column {self.label!r}; it has {table.column_names}"
            )
        column = table[self.label]
        if column.null_count:
            raise TrainerError(f"label column {self.label!r} has {column.null_count} nulls")
        if self.task == "binary":
            return binary_labels(column.to_numpy(zero_copy_only=False), self.label)
        if self.task == "regression":
            values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
            if not np.isfinite(values).all():
                raise TrainerError(f"label column {self.label!r} holds NaN or infinite values")
            return values
        return np.array(column.to_pylist(), dtype=object)

    def with_classes(self, split: Split) -> ModelInputs:
        """These inputs with ``classes`` set for a multiclass task (sorted label values of the
        train and validation splits when not given); unchanged for other tasks."""
        if self.task not in _CLASSIFICATION or self.classes is not None:
            return self
        seen: set[Any] = set()
        for part in (split.train, split.validation):
            if part.num_rows:
                seen.update(_plain(v) for v in self.target(part))
        try:
            classes = tuple(sorted(seen))
        except TypeError as ex:
            raise TrainerError(
                f"label {self.label!r} mixes value types {sorted({type(v).__name__ for v in seen})}"
                "; pass ModelInputs(classes=...) in the order wanted"
            ) from ex
        if len(classes) < 2:
            raise TrainerError(
                f"a {self.task} model needs at least 2 classes; label {self.label!r} holds "
                f"{list(classes)}"
            )
        return replace(self, classes=classes)

    def class_index(self, values: np.ndarray) -> np.ndarray:
        """Class values as indices 0..k-1 into ``classes``; an unknown value is an error."""
        if self.classes is None:
            raise TrainerError(f"a {self.task} model needs its classes; use with_classes(split)")
        index = {c: i for i, c in enumerate(self.classes)}
        unknown = sorted({repr(_plain(v)) for v in values if _plain(v) not in index})
        if unknown:
            raise TrainerError(
                f"label {self.label!r} holds values {', '.join(unknown[:10])} that are not "
                f"among the classes {list(self.classes)}"
            )
        return np.fromiter((index[_plain(v)] for v in values), dtype=np.int64, count=len(values))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (as in ``signature.json``)."""
        return {
            "task": self.task,
            "features": list(self.features),
            "label": self.label,
            "classes": None if self.classes is None else list(self.classes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelInputs:
        """Inverse of `to_dict` (extra keys are ignored)."""
        classes = data.get("classes")
        return cls(tuple(data["features"]), str(data["label"]), str(data.get("task", "binary")),
                   None if classes is None else tuple(classes))


def binary_labels(values: np.ndarray, label: str = "label") -> np.ndarray:
    """0/1 (or boolean) labels as int8; any other value is an error.

    >>> binary_labels(np.array([True, False])).tolist()
    [1, 0]
    """
    values = np.asarray(values)
    if values.dtype == object or not np.isin(values, (0, 1)).all():
        shown = sorted({repr(_plain(v)) for v in np.unique(values.astype(object))})[:10]
        raise TrainerError(
            f"a binary label must hold 0 and 1 only; {label!r} holds {', '.join(shown)}"
        )
    return values.astype(np.int8)


def table_matrix(table: pa.Table, columns: Sequence[str]) -> np.ndarray:
    """``columns`` of ``table`` as a float32 matrix in that order, nulls as NaN.

    >>> table_matrix(pa.table({"b": [1, None], "a": [0.5, 2.0]}), ["a", "b"]).tolist()
    [[0.5, 1.0], [2.0, nan]]
    """
    missing = [name for name in columns if name not in table.column_names]
    if missing:
        raise TrainerError(f"table lacks feature columns {missing}; it has {table.column_names}")
    if not columns or table.num_rows == 0:
        return np.empty((table.num_rows, len(columns)), dtype=np.float32)
    arrays = []
    for name in columns:
        try:
            values = pc.cast(table[name], pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as ex:
            raise TrainerError(
                f"feature column {name!r} of type {table[name].type} is not numeric: {ex}"
            ) from ex
        arrays.append(pc.fill_null(values, math.nan).to_numpy(zero_copy_only=False))
    return np.column_stack(arrays).astype(np.float32)


def table_inputs(table: pa.Table, columns: Sequence[str]) -> np.ndarray:
    """``columns`` of ``table`` as a model reads them: the float32 `table_matrix` when every
    column holds numbers (or booleans), else an object matrix of the values as they are
    (a text model's input, nulls as None).

    >>> table_inputs(pa.table({"a": [1, 2]}), ["a"]).dtype
    dtype('float32')
    >>> table_inputs(pa.table({"q": ["hi", None], "a": [1, 2]}), ["q", "a"]).tolist()
    [['hi', 1], [None, 2]]
    """
    missing = [name for name in columns if name not in table.column_names]
    if missing:
        raise TrainerError(f"table lacks feature columns {missing}; it has {table.column_names}")
    kinds = [table.schema.field(name).type for name in columns]
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
           or pa.types.is_null(t) for t in kinds):
        return table_matrix(table, columns)
    out = np.empty((table.num_rows, len(columns)), dtype=object)
    for j, name in enumerate(columns):
        out[:, j] = table[name].to_pylist()
    return out


def check_matrix(X: np.ndarray, features: Sequence[str]) -> np.ndarray:
    """``X`` as a 2-d float32 array of ``len(features)`` columns, else a TrainerError naming the
    columns expected."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != len(features):
        raise TrainerError(
            f"expected a matrix of {len(features)} columns {list(features)} (in this order), "
            f"got shape {X.shape}"
        )
    return X


def check_predictions(predictions: Any, rows: int, inputs: ModelInputs, kind: str) -> np.ndarray:
    """A model's predictions as the task promises them: (rows,) for binary and regression,
    (rows, classes) for multiclass; a TrainerError names the trainer otherwise."""
    out = np.asarray(predictions)
    want: tuple[int, ...] = (rows,)
    if inputs.task in _CLASSIFICATION:
        want = (rows, len(inputs.classes or ()))
    if out.shape != want:
        raise TrainerError(
            f"trainer {kind!r} predicted shape {out.shape} for {rows} rows; a {inputs.task} "
            f"model must return {want}: {OUTPUTS[inputs.task]}"
        )
    return out


@dataclass(frozen=True)
class FitResult:
    """What a fit wrote and learned.

    ``files`` are the paths of the artifacts to register (all in one directory, including
    ``signature.json``), ``history`` holds one value per epoch or boosting round (e.g.
    ``train_loss``, ``val_loss``), ``params`` everything needed to rebuild and explain the model
    (hyperparameters, class weight, classes, ...), including ``device``: where the fit really
    ran (XGBoost uses the CPU on a TPU host).
    """

    files: list[str]
    history: dict[str, list[float]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class LoadedModel(Protocol):
    """A model loaded from its artifacts, ready to score."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Binary: P(label 1), shape (rows,); multiclass: probabilities (rows, classes);
        regression: values (rows,). Rows of ``X`` hold the features in signature order."""
        ...


class Trainer(Protocol):
    """One kind of model (see `fti.models.trainers.protocol` for a complete example).

    ``kind`` names it in registry metadata (a built-in kind or ``module:Class``); the class is
    built with its hyperparameters as keyword arguments, each with a default, and may list the
    ``tasks`` it supports.
    """

    kind: str

    def fit(
        self, split: Split, inputs: ModelInputs, device: str, workdir: Path,
        progress: EpochCallback | None = None,
    ) -> FitResult:
        """Train on ``split.train`` (early stopping on ``split.validation``) into ``workdir``;
        write ``signature.json`` there (`write_signature`) and list it in the result's files."""
        ...

    def load(self, path_dir: Path) -> LoadedModel:
        """Load the artifacts in ``path_dir`` (check their sha256 first, e.g. via the registry)."""
        ...


@dataclass(frozen=True)
class ArtifactSignature:
    """The content of ``signature.json``: which trainer wrote the artifacts, what the model
    reads (``inputs``), what it returns, and which files hold it."""

    kind: str
    inputs: ModelInputs
    files: tuple[str, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        """The inputs' task."""
        return self.inputs.task

    @property
    def features(self) -> tuple[str, ...]:
        """The feature columns, in matrix order."""
        return self.inputs.features

    @property
    def classes(self) -> tuple[Any, ...] | None:
        """The class values (column order of multiclass probabilities)."""
        return self.inputs.classes

    def to_dict(self) -> dict[str, Any]:
        """The JSON document written as ``signature.json``."""
        return {
            "format": SIGNATURE_FORMAT,
            "kind": self.kind,
            **self.inputs.to_dict(),
            "output": OUTPUTS[self.inputs.task],
            "files": list(self.files),
            **dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArtifactSignature:
        """Parse a ``signature.json`` document; TrainerError when it is not one."""
        if data.get("format") != SIGNATURE_FORMAT:
            raise TrainerError(f"not an {SIGNATURE_FORMAT} document: format {data.get('format')!r}")
        known = {"format", "kind", "task", "features", "label", "classes", "output", "files"}
        try:
            return cls(str(data["kind"]), ModelInputs.from_dict(data),
                       tuple(str(f) for f in data["files"]),
                       {k: v for k, v in data.items() if k not in known})
        except KeyError as ex:
            raise TrainerError(f"{SIGNATURE_FILE} lacks the field {ex.args[0]!r}") from ex


def kind_of(trainer: object) -> str:
    """The kind recorded for a trainer (instance or class): its built-in kind, else
    ``module:Class``, which `fti.models.trainers.trainer_for` imports again.

    >>> kind_of(ModelInputs)
    'fti.models.trainers.base:ModelInputs'
    """
    cls = trainer if isinstance(trainer, type) else type(trainer)
    target = f"{cls.__module__}:{cls.__qualname__}"
    for kind, builtin in BUILTIN_TRAINERS.items():
        if builtin == target:
            return kind
    return target


def write_signature(
    workdir: Path, trainer: object | str, inputs: ModelInputs, files: Iterable[str | Path],
    **extra: Any,
) -> Path:
    """Write ``signature.json`` into ``workdir`` describing ``inputs`` and the artifact ``files``
    (names or paths; their names are recorded); return its path for `FitResult.files`.

    ``trainer`` is the trainer (its kind is `kind_of` it) or a kind; ``extra`` adds JSON fields.
    Every file must be in a safe format (`check_safe_files`).
    """
    names = tuple(Path(f).name for f in files)
    check_safe_files(names)
    if SIGNATURE_FILE in names:
        raise TrainerError(f"{SIGNATURE_FILE} is written by write_signature, not an artifact")
    kind = trainer if isinstance(trainer, str) else kind_of(trainer)
    signature = ArtifactSignature(kind, inputs, names, extra)
    path = Path(workdir) / SIGNATURE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(signature.to_dict(), indent=1, default=_plain))
    return path


def read_signature(directory: Path) -> ArtifactSignature:
    """Read ``signature.json`` from ``directory`` (TrainerError when missing or invalid)."""
    path = Path(directory) / SIGNATURE_FILE
    if not path.is_file():
        raise TrainerError(f"{directory} has no {SIGNATURE_FILE}; it was not saved by a trainer "
                           "of this version of fti")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as ex:
        raise TrainerError(f"cannot read {path}: {ex}") from ex
    if not isinstance(data, dict):
        raise TrainerError(f"{path} does not hold a JSON object")
    return ArtifactSignature.from_dict(data)


def check_safe_files(names: Iterable[str | Path]) -> None:
    """Refuse artifact files whose format may execute code when loaded (pickle, joblib,
    ``torch.save``): only `SAFE_SUFFIXES` are allowed.

    >>> check_safe_files(["model.ubj", "model.pkl"])
    Traceback (most recent call last):
    ...
    fti.models.errors.TrainerError: artifact files ['model.pkl'] are not in a safe format; ...
    """
    unsafe = [Path(n).name for n in names if Path(n).suffix.lower() not in SAFE_SUFFIXES]
    if unsafe:
        raise TrainerError(
            f"artifact files {unsafe} are not in a safe format; use one of "
            f"{', '.join(sorted(SAFE_SUFFIXES))} (never pickle)"
        )


def artifact_dir(source: Path | str | Sequence[str | Path]) -> Path:
    """The directory holding a model: ``source`` itself, or the one parent of its files."""
    if isinstance(source, str | Path):
        return Path(source)
    parents = {Path(name).parent for name in source}
    if len(parents) != 1:
        raise TrainerError(
            f"a model's files must sit in one directory, got {sorted(map(str, source))}"
        )
    return parents.pop()
