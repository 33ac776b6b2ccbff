"""Feature views: which features a model reads, joined from groups by key, and a catalog.

A `FeatureView` starts at its root (the label group) and joins feature groups along key
paths: a joined group's entity keys must be columns of the root or of a group joined before
it. It names the labels, the model inputs (in order) and helper columns that are returned for
evaluation (slices, bias checks) but never fed to the model. Features tagged with a forbidden
tag (``pii`` by default) may be helper columns, never model inputs.

>>> import pyarrow as pa
>>> from fti.features.groups import Feature, FeatureGroup
>>> labels = FeatureGroup("labels", 1, ("tx_id",), "event_time",
...                       (Feature("is_fraud", pa.int8(), nullable=False),))
>>> tx = FeatureGroup("tx", 1, ("tx_id",), "event_time",
...                   (Feature("amount", pa.float64()), Feature("name", pa.string(), tags={"pii"})))
>>> view = FeatureView("v", 1, labels, (Join(tx),), labels=("is_fraud",), helper_columns=("name",))
>>> view.model_inputs()
('amount',)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal, TypeVar

import pyarrow as pa

from fti.features.errors import FeatureError, FeatureGroupError, FeatureViewError
from fti.features.groups import KEY_TAG, Feature, FeatureGroup, check_evolution

Role = Literal["label", "input", "helper"]
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
T = TypeVar("T")


@dataclass(frozen=True)
class Join:
    """Join ``group`` on ``on`` (default: its entity keys), selecting ``features``.

    ``features=None`` selects every feature of the group except secondary keys, labels and
    the view's helper columns; ``()`` joins the group for helper columns only.
    """

    group: FeatureGroup
    on: tuple[str, ...] | None = None
    features: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for attr in ("on", "features"):
            if getattr(self, attr) is not None:
                object.__setattr__(self, attr, tuple(getattr(self, attr)))

    @property
    def keys(self) -> tuple[str, ...]:
        """The columns this join matches on."""
        return self.group.entity_keys if self.on is None else self.on


@dataclass(frozen=True)
class ViewColumn:
    """One output column of a view: its role and the group and feature it comes from."""

    role: Role
    group: FeatureGroup
    feature: Feature

    @property
    def name(self) -> str:
        """The column name."""
        return self.feature.name


@dataclass(frozen=True)
class FeatureView:
    """Labels from ``root`` joined point-in-time to features of other groups.

    ``lookback`` bounds how old a joined feature row may be relative to the label's event time
    (``None``: no bound). Construction checks everything; an inconsistent view cannot exist.
    """

    name: str
    version: int
    root: FeatureGroup
    joins: tuple[Join, ...] = ()
    labels: tuple[str, ...] = ()
    helper_columns: tuple[str, ...] = ()
    lookback: timedelta | None = None
    forbid_tags: frozenset[str] = frozenset({"pii"})
    description: str = ""
    _columns: tuple[ViewColumn, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for attr in ("joins", "labels", "helper_columns"):
            object.__setattr__(self, attr, tuple(getattr(self, attr)))
        object.__setattr__(self, "forbid_tags", frozenset(self.forbid_tags))
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise self._error(
                f"name must be a letter or _ then letters, digits or _, got {self.name!r}"
            )
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise self._error(f"version must be an int >= 1, got {self.version!r}")
        if self.lookback is not None and self.lookback <= timedelta(0):
            raise self._error(f"lookback must be positive or None, got {self.lookback}")
        self._check_key_paths()
        columns = (*self._resolve_labels(), *self._resolve_inputs(), *self._resolve_helpers())
        object.__setattr__(self, "_columns", columns)

    def _error(self, message: str) -> FeatureViewError:
        return FeatureViewError(f"feature view {self.name!r}: {message}")

    def _check_key_paths(self) -> None:
        """Every join's keys must already be columns of the root or an earlier join."""
        root = self.root
        available = {name: root for name in root.columns() if name != root.event_time}
        seen = {(self.root.name, self.root.version)}
        for join in self.joins:
            group = join.group
            ref = f"{group.name!r} v{group.version}"
            if (group.name, group.version) in seen:
                raise self._error(f"group {ref} is joined twice")
            if join.keys != group.entity_keys:
                raise self._error(
                    f"join of {ref} must be on its entity keys {list(group.entity_keys)}, "
                    f"got {list(join.keys)}"
                )
            for key in join.keys:
                if key not in available:
                    sources = sorted({g.name for g in available.values()})
                    raise self._error(
                        f"cannot reach group {ref}: its key {key!r} is not a column of {sources}; "
                        f"join a group that has {key!r} before it"
                    )
            seen.add((group.name, group.version))
            for name in group.columns():
                if name != group.event_time:
                    available.setdefault(name, group)

    def _resolve_labels(self) -> list[ViewColumn]:
        """Labels are features of the root group."""
        out = []
        for name in self.labels:
            if name not in self.root.feature_names:
                raise self._error(
                    f"label {name!r} is not a feature of root group {self.root.name!r}; "
                    f"it has {list(self.root.feature_names)}"
                )
            out.append(ViewColumn("label", self.root, self.root.feature(name)))
        return out

    def _resolve_inputs(self) -> list[ViewColumn]:
        """Selected features of each join, in join order; refuse leaks, clashes and pii."""
        out: dict[str, ViewColumn] = {}
        for join in self.joins:
            group = join.group
            names = join.features
            if names is None:
                names = tuple(
                    f.name
                    for f in group.features
                    if KEY_TAG not in f.tags and f.name not in (*self.labels, *self.helper_columns)
                )
            for name in names:
                try:
                    feature = group.feature(name)
                except FeatureGroupError as ex:
                    raise self._error(str(ex)) from None
                self._check_input(name, feature, group, out)
                out[name] = ViewColumn("input", group, feature)
        return list(out.values())

    def _check_input(
        self, name: str, feature: Feature, group: FeatureGroup, chosen: dict[str, ViewColumn]
    ) -> None:
        """Refuse a model input that is a label, a helper, a duplicate or has a forbidden tag."""
        where = f"feature {name!r} of group {group.name!r}"
        if name in self.labels:
            raise self._error(f"{where} is a label; a label cannot be a model input")
        if name in self.helper_columns:
            raise self._error(f"{where} is a helper column; helper columns are never inputs")
        if name in chosen:
            raise self._error(
                f"{where} is already selected from group {chosen[name].group.name!r}; "
                "select it from one group only"
            )
        forbidden = sorted(feature.tags & self.forbid_tags)
        if forbidden:
            raise self._error(
                f"{where} is tagged {forbidden[0]!r} and cannot be a model input; "
                "leave it out of the selection or list it in helper_columns (evaluation only)"
            )

    def _resolve_helpers(self) -> list[ViewColumn]:
        """Helper columns: any column of the root or a joined group (first match wins)."""
        groups = (self.root, *(j.group for j in self.joins))
        out = []
        for name in self.helper_columns:
            if name in self.labels or self.helper_columns.count(name) > 1:
                raise self._error(f"helper column {name!r} is listed twice or is also a label")
            group = next((g for g in groups if name in g.columns()), None)
            if group is None:
                raise self._error(
                    f"helper column {name!r} is not a column of any of {[g.name for g in groups]}"
                )
            out.append(ViewColumn("helper", group, group.columns()[name]))
        return out

    @property
    def groups(self) -> tuple[FeatureGroup, ...]:
        """The root group, then the joined groups in join order."""
        return (self.root, *(j.group for j in self.joins))

    def columns(self) -> tuple[ViewColumn, ...]:
        """Every output column: labels, then model inputs, then helper columns."""
        return self._columns

    def model_inputs(self) -> tuple[str, ...]:
        """Names of the model's inputs, in the order the model receives them."""
        return tuple(c.name for c in self._columns if c.role == "input")

    def input_schema(self) -> pa.Schema:
        """Arrow schema of the model inputs, in order.

        >>> from fti.features.fraud import FRAUD_V1
        >>> FRAUD_V1.input_schema().field("amount").type
        DataType(double)
        """
        return pa.schema([c.feature.arrow_field() for c in self._columns if c.role == "input"])

    def describe(self) -> str:
        """A readable text table of the view: header, joins, then one line per column."""
        lookback = "unlimited" if self.lookback is None else str(self.lookback)
        root = self.root
        lines = [
            f"feature view {self.name} v{self.version}: root {root.name} v{root.version} "
            f"(table {root.table_name}), lookback {lookback}"
        ]
        for join in self.joins:
            lines.append(
                f"  join {join.group.name} v{join.group.version} "
                f"(table {join.group.table_name}) on {', '.join(join.keys)}"
            )
        header = ("role", "column", "group", "dtype", "tags", "description")
        rows = [header] + [
            (
                c.role,
                c.name,
                f"{c.group.name} v{c.group.version}",
                str(c.feature.dtype),
                ",".join(sorted(c.feature.tags)),
                c.feature.description,
            )
            for c in self._columns
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            lines.append("  ".join([*cells, row[-1]]).rstrip())
        return "\n".join(lines)


class FeatureCatalog:
    """An in-memory registry of feature groups and views, by name and version.

    Re-registering a group under the same name and version applies `check_evolution`;
    a view is immutable per version.

    >>> from fti.features.fraud import CATALOG
    >>> CATALOG.group("card_features").table_name, CATALOG.view("fraud_v1").labels
    ('card_features', ('is_fraud',))
    """

    def __init__(self) -> None:
        self._groups: dict[tuple[str, int], FeatureGroup] = {}
        self._views: dict[tuple[str, int], FeatureView] = {}

    def register_group(self, group: FeatureGroup) -> FeatureGroup:
        """Add ``group``, or replace a compatible declaration of the same name and version."""
        old = self._groups.get((group.name, group.version))
        if old is not None:
            check_evolution(old, group)
        self._groups[(group.name, group.version)] = group
        return group

    def register_view(self, view: FeatureView) -> FeatureView:
        """Add ``view`` and its groups; its groups must be compatible with registered ones."""
        for group in view.groups:
            old = self._groups.get((group.name, group.version))
            if old is not None:
                check_evolution(old, group)
        old_view = self._views.get((view.name, view.version))
        if old_view is not None and old_view != view:
            raise FeatureViewError(
                f"feature view {view.name!r} v{view.version} is already registered with another "
                "definition; "
                f"bump the version (to v{view.version + 1}) to change it"
            )
        for group in view.groups:
            self.register_group(group)
        self._views[(view.name, view.version)] = view
        return view

    def group(self, name: str, version: int | None = None) -> FeatureGroup:
        """The group ``name`` at ``version`` (default: the latest registered)."""
        return _lookup(self._groups, name, version, "feature group", FeatureGroupError)

    def view(self, name: str, version: int | None = None) -> FeatureView:
        """The view ``name`` at ``version`` (default: the latest registered)."""
        return _lookup(self._views, name, version, "feature view", FeatureViewError)

    def groups(self) -> list[FeatureGroup]:
        """Every registered group, by name then version."""
        return [self._groups[k] for k in sorted(self._groups)]

    def views(self) -> list[FeatureView]:
        """Every registered view, by name then version."""
        return [self._views[k] for k in sorted(self._views)]


def _lookup(
    entries: Mapping[tuple[str, int], T],
    name: str,
    version: int | None,
    kind: str,
    error: type[FeatureError],
) -> T:
    """``entries[(name, version)]`` (latest if ``version`` is None), else ``error`` naming it."""
    versions = sorted(v for n, v in entries if n == name)
    if versions and (version is None or version in versions):
        return entries[(name, versions[-1] if version is None else version)]
    wanted = name if version is None else f"{name} v{version}"
    known = [f"{n} v{v}" for n, v in sorted(entries)]
    raise error(f"unknown {kind} {wanted!r}; registered: {known}")
