"""The model declaration of a user project: which view it learns, its task, its trainer,
its gates and when it retrains.

A model is trained on its feature view's training data (`fti.features.project.training`):
inputs are the view's feature columns (or the subset `features`), the target is the view's
label. Gates are thresholds in the task's metrics; a metric that is better when lower
(`mae`, `rmse`, `log_loss`, …) is a maximum, every other one a minimum.

>>> from fti.features.project import Field, Stream, FeatureGroup, FeatureView, Label, agg
>>> s = Stream("s", topic="s", key="k", id="i", event_time="ts",
...            fields=[Field("i"), Field("k"), Field("x", "float"), Field("y", "int"),
...                    Field("ts", "timestamp")])
>>> g = FeatureGroup("g", entity="k", stream=s, aggregations=[agg.mean("x", window="1h")])
>>> v = FeatureView("v", Label("y", s, value="y"), [g])
>>> m = Model("m", view=v, task="binary", trainer="xgboost", gates={"roc_auc": 0.7})
>>> m.feature_columns(), m.label_column(), m.gate_direction("roc_auc")
(['g__x_mean_1h'], 'y', 'min')
>>> Model("r", view=v, task="regression", gates={"roc_auc": 0.7})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
fti.features.errors.DefinitionError: model r: gate roc_auc is not a regression metric; ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import pyarrow as pa

from fti.features.errors import DefinitionError
from fti.features.project.declare import FeatureView
from fti.features.project.fields import Duration, check_name, parse_duration

Task = Literal["binary", "multiclass", "regression", "preference"]
TASKS: tuple[str, ...] = ("binary", "multiclass", "regression", "preference")
#: The built-in trainer kinds; a class implementing the trainer protocol is the user's own.
TRAINER_KINDS: tuple[str, ...] = ("xgboost", "mlp", "lora")
#: Built-in trainers that read text columns; every other trainer takes numbers only.
TEXT_TRAINERS: frozenset[str] = frozenset({"lora"})
#: Metrics each task's evaluation reports, which gates may name.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy", "log_loss",
               "brier", "ece"),
    "multiclass": ("accuracy", "macro_f1", "log_loss"),
    "regression": ("mae", "rmse", "r2"),
    "preference": ("accuracy", "macro_f1", "margin_over_majority", "min_class_recall",
                   "log_loss"),
}
#: Metrics that are better when lower: their gate is a maximum.
LOWER_IS_BETTER = frozenset({"mae", "rmse", "log_loss", "brier", "ece"})
#: Each task's headline metric: compared with the champion's on the same test set.
PRIMARY_METRIC: dict[str, str] = {"binary": "roc_auc", "multiclass": "macro_f1",
                                  "regression": "mae", "preference": "accuracy"}


@dataclass(frozen=True)
class Retrain:
    """When a model retrains: drift on `monitor` (fields or transformations of the view's
    stream), its live error rising, `volume_labels` new labels, at most once per `cooldown`.

    >>> Retrain(monitor=["amount"], cooldown="10m").cooldown
    datetime.timedelta(seconds=600)
    """

    monitor: Sequence[str] = ()
    performance: bool = True
    volume_labels: int | None = None
    cooldown: Duration = "10m"

    def __post_init__(self) -> None:
        object.__setattr__(self, "monitor", tuple(self.monitor))
        object.__setattr__(self, "cooldown", parse_duration(self.cooldown, "retrain: cooldown"))
        if self.volume_labels is not None and self.volume_labels < 1:
            raise DefinitionError("retrain: volume_labels must be at least 1 (or None: off)")

    def spec(self) -> dict[str, Any]:
        """The policy as plain data."""
        cooldown = self.cooldown
        assert isinstance(cooldown, timedelta)
        return {"monitor": list(self.monitor), "performance": self.performance,
                "volume_labels": self.volume_labels, "cooldown": cooldown.total_seconds()}


@dataclass(frozen=True)
class Model:
    """A model the project trains and serves.

    `trainer` is a built-in kind (`xgboost`, `mlp`, `lora`) or a class implementing the
    trainer protocol (`fti.models.trainers.protocol.Trainer`); `params` are its
    hyperparameters. `gates` map a metric of the task to its threshold; `max_regression` is
    how much worse than the champion on the same test set (in the primary metric) a
    candidate may be; `max_slice_gap` bounds the primary metric's gap between the slices of
    the test split by each column of `slices` (columns of the view's training data: fields
    of the label's stream or the view's features; binary models).
    `serve=False` declares a model trained on demand only (`fti train`): the inference and
    monitor services leave it alone.
    """

    name: str
    view: FeatureView
    task: Task = "binary"
    trainer: str | type = "xgboost"
    params: Mapping[str, Any] = field(default_factory=dict)
    features: Sequence[str] | None = None
    gates: Mapping[str, float] = field(default_factory=dict)
    max_regression: float = 0.02
    max_slice_gap: float | None = None
    slices: Sequence[str] = ()
    threshold: float = 0.5
    device: str = "auto"
    retrain: Retrain = field(default_factory=Retrain)
    serve: bool = True
    version: int = 1
    description: str = ""

    def __post_init__(self) -> None:
        name = self.name.replace("-", "_")
        check_name("model", name)
        where = f"model {self.name}"
        if self.task not in TASKS:
            raise DefinitionError(f"{where}: task {self.task!r} is unknown; use one of "
                                  f"{', '.join(TASKS)}")
        if isinstance(self.trainer, str) and self.trainer not in TRAINER_KINDS:
            raise DefinitionError(f"{where}: trainer {self.trainer!r} is unknown; use one of "
                                  f"{', '.join(TRAINER_KINDS)} or a trainer class")
        view_features = list(self.view.features or ())
        reads_text = self.reads_text()
        allowed = text_columns(self.view) if reads_text else numeric_columns(self.view)
        chosen = ([c for c in view_features if c in allowed] if self.features is None
                  else list(self.features))
        for column in chosen:
            if column not in view_features:
                raise DefinitionError(f"{where}: feature {column!r} is not in view "
                                      f"{self.view.name} ({', '.join(view_features)})")
            if column not in allowed and reads_text:
                raise DefinitionError(
                    f"{where}: feature {column} is not text; trainer {self.trainer} reads "
                    "text columns only")
            if column not in allowed:
                raise DefinitionError(
                    f"{where}: feature {column} is not a number; models take numbers: add a "
                    "transformation that encodes it (e.g. a category code) and use that")
        if not chosen:
            raise DefinitionError(f"{where}: no features to learn from")
        object.__setattr__(self, "features", tuple(chosen))
        object.__setattr__(self, "params", dict(self.params))
        object.__setattr__(self, "gates", dict(self.gates))
        for metric in self.gates:
            if metric not in TASK_METRICS[self.task]:
                raise DefinitionError(
                    f"{where}: gate {metric} is not a {self.task} metric; use one of "
                    f"{', '.join(TASK_METRICS[self.task])}")
        self._check_slices(where, view_features)
        stream = self.view.groups[0].stream
        known = {f.name for f in stream.fields} | {
            t.name for g in self.view.groups for t in g.transformations}
        for monitored in self.retrain.monitor:
            if monitored not in known:
                raise DefinitionError(f"{where}: retrain monitors {monitored!r}, which is not a "
                                      f"field or transformation of stream {stream.name}")

    def _check_slices(self, where: str, view_features: list[str]) -> None:
        object.__setattr__(self, "slices", tuple(self.slices))
        columns = [f.name for f in self.view.label.stream.fields] + view_features
        for column in self.slices:
            if column not in columns:
                raise DefinitionError(f"{where}: slice column {column!r} is not a column of "
                                      f"view {self.view.name}'s training data; use one of "
                                      f"{', '.join(columns)}")
        if self.slices and self.task != "binary":
            raise DefinitionError(f"{where}: slices are scored for binary models only, not "
                                  f"{self.task}")
        if self.max_slice_gap is not None and not self.slices:
            raise DefinitionError(f"{where}: max_slice_gap needs the columns to slice the test "
                                  "split by: add slices=[...]")

    def feature_columns(self) -> list[str]:
        """The model's inputs, in order: columns of its view's training data."""
        return list(self.features or ())

    def label_column(self) -> str:
        """The training target: the view's label value column."""
        return self.view.label.value

    def primary_metric(self) -> str:
        """The task's headline metric (compared with the champion's)."""
        return PRIMARY_METRIC[self.task]

    @staticmethod
    def gate_direction(metric: str) -> Literal["min", "max"]:
        """`max` for a metric that is better when lower, else `min`."""
        return "max" if metric in LOWER_IS_BETTER else "min"

    def reads_text(self) -> bool:
        """Whether the trainer reads text columns (`TEXT_TRAINERS`) rather than numbers."""
        return isinstance(self.trainer, str) and self.trainer in TEXT_TRAINERS

    def trainer_kind(self) -> str:
        """The built-in kind, or `module:Class` of a user's trainer."""
        if isinstance(self.trainer, str):
            return self.trainer
        return f"{self.trainer.__module__}:{self.trainer.__qualname__}"

    def spec(self) -> dict[str, Any]:
        """The model as plain data (for plan/apply)."""
        return {"name": self.name, "version": self.version, "view": self.view.name,
                "task": self.task, "trainer": self.trainer_kind(), "params": dict(self.params),
                "features": self.feature_columns(), "gates": dict(self.gates),
                "max_regression": self.max_regression, "max_slice_gap": self.max_slice_gap,
                **({"slices": list(self.slices)} if self.slices else {}),
                "threshold": self.threshold, "device": self.device,
                "retrain": self.retrain.spec(), "serve": self.serve,
                "description": self.description}


def text_columns(view: FeatureView) -> set[str]:
    """The view's feature columns whose values are text: inputs of a text model."""
    out = set()
    for group in view.groups:
        for feature, type_ in group.feature_types().items():
            if pa.types.is_string(type_) or pa.types.is_large_string(type_):
                out.add(view.column(group, feature))
    return out


def numeric_columns(view: FeatureView) -> set[str]:
    """The view's feature columns whose values are numbers (or booleans): model inputs."""
    out = set()
    for group in view.groups:
        for feature, type_ in group.feature_types().items():
            if (pa.types.is_integer(type_) or pa.types.is_floating(type_)
                    or pa.types.is_boolean(type_)):
                out.add(view.column(group, feature))
    return out
