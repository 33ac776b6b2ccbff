"""Tests of feature groups: schema, table names, schema evolution and the catalog."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pyarrow as pa
import pytest

from fti.errors import FtiError
from fti.features.definitions import FEATURE_COLUMNS, FEATURES_SCHEMA, LABELS_SCHEMA
from fti.features.fraud import CARD_FEATURES, CATALOG, LABELS, TRANSACTIONS_RAW
from fti.features.groups import (
    KEY_TAG,
    Feature,
    FeatureGroup,
    FeatureGroupError,
    SchemaEvolutionError,
    check_evolution,
)
from fti.features.views import FeatureCatalog

X = Feature("x", pa.float64(), description="an x")
Y = Feature("y", pa.int64(), nullable=False)


def _group(*features: Feature, version: int = 1, **changes: object) -> FeatureGroup:
    """A small group keyed by ``k`` with event time ``t``; ``changes`` override fields."""
    base = FeatureGroup("g", version, ("k",), "t", features or (X, Y))
    return replace(base, **changes) if changes else base


def test_schema_has_keys_event_time_features_and_source_columns() -> None:
    schema = _group().schema()
    assert schema.names == ["k", "t", "x", "y", "source_topic", "source_partition", "source_offset",
                            "source_topic_id"]
    assert schema.field("k").type == pa.string() and not schema.field("k").nullable
    assert schema.field("t").type == pa.timestamp("us", tz="UTC") and not schema.field("t").nullable
    assert schema.field("x").nullable and not schema.field("y").nullable
    assert schema.field("source_offset").type == pa.int64()


def test_secondary_keys_sit_next_to_the_entity_keys() -> None:
    group = _group(X, Feature("card", pa.string(), nullable=False, tags={KEY_TAG}))
    assert group.schema().names[:4] == ["k", "card", "t", "x"]
    assert group.secondary_keys == ("card",)


def test_table_name_defaults_to_name_and_version_and_can_be_overridden() -> None:
    assert _group(version=3).table_name == "g_v3"
    assert _group(table="legacy").table_name == "legacy"


def test_card_features_describes_the_existing_table_exactly() -> None:
    assert CARD_FEATURES.table_name == "card_features"
    assert CARD_FEATURES.schema().equals(FEATURES_SCHEMA)
    floats = [f for f in CARD_FEATURES.features if KEY_TAG not in f.tags]
    assert tuple(f.name for f in floats) == FEATURE_COLUMNS
    assert all(f.dtype == pa.float64() and f.description for f in floats)
    assert CARD_FEATURES.ttl == timedelta(hours=24)
    assert CARD_FEATURES.online and CARD_FEATURES.offline


def test_labels_group_has_the_fields_of_the_existing_table() -> None:
    assert LABELS.table_name == "labels"
    assert sorted(LABELS.schema(), key=str) == sorted(LABELS_SCHEMA, key=str)
    assert not LABELS.feature("is_fraud").nullable


def test_raw_transactions_declare_a_pii_column() -> None:
    assert "pii" in TRANSACTIONS_RAW.feature("card_holder_name").tags
    assert "pii" not in TRANSACTIONS_RAW.feature("country").tags


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"version": 0}, "version must be an int >= 1"),
        ({"entity_keys": ()}, "at least one entity key"),
        ({"ttl": timedelta(0)}, "ttl must be positive"),
        ({"event_time": "x"}, "column names used twice: ['x']"),
        ({"features": (Feature("source_offset", pa.int64()),)}, "used twice: ['source_offset']"),
        ({"name": "bad name"}, "feature group name must be"),
    ],
)
def test_invalid_groups_are_refused_with_the_reason(kwargs: dict, words: str) -> None:
    fields = {
        "name": "g",
        "version": 1,
        "entity_keys": ("k",),
        "event_time": "t",
        "features": (X,),
        **kwargs,
    }
    with pytest.raises(FeatureGroupError) as err:
        FeatureGroup(**fields)
    assert words in str(err.value)


def test_feature_dtype_must_be_an_arrow_type() -> None:
    with pytest.raises(FeatureGroupError, match="dtype must be a pyarrow DataType"):
        Feature("x", float)  # type: ignore[arg-type]


def test_unknown_feature_lookup_lists_the_features() -> None:
    with pytest.raises(FeatureGroupError, match=r"has no feature 'z'; it has \['x', 'y'\]"):
        _group().feature("z")


@pytest.mark.parametrize(
    "new",
    [
        _group(X, Y, Feature("z", pa.string())),  # a nullable feature added
        _group(replace(X, description="changed", tags={"t"}), Y),  # metadata only
        _group(X, replace(Y, nullable=True)),  # not null relaxed to nullable
        _group(ttl=timedelta(hours=1), online=True),
        _group(Feature("x", pa.int64()), version=2),  # a new version may change anything
    ],
)
def test_compatible_changes_are_allowed(new: FeatureGroup) -> None:
    check_evolution(_group(), new)


@pytest.mark.parametrize(
    ("new", "words"),
    [
        (_group(X), "removed feature 'y'"),
        (_group(Feature("x", pa.float32()), Y), "feature 'x' changed dtype double -> float"),
        (_group(replace(X, nullable=False), Y), "feature 'x' changed nullable -> not null"),
        (_group(X, Y, Feature("z", pa.int8(), nullable=False)), "non-nullable feature 'z'"),
        (_group(entity_keys=("k2",)), "entity keys changed"),
        (_group(event_time="t2"), "event time changed 't' -> 't2'"),
        (_group(table="other"), "table changed 'g_v1' -> 'other'"),
    ],
)
def test_breaking_changes_without_a_new_version_are_refused(new: FeatureGroup, words: str) -> None:
    with pytest.raises(SchemaEvolutionError) as err:
        check_evolution(_group(), new)
    message = str(err.value)
    assert words in message
    assert "bump the version (to v2)" in message
    assert isinstance(err.value, FtiError)


def test_every_breaking_change_is_listed() -> None:
    new = _group(Feature("x", pa.int32()))
    with pytest.raises(SchemaEvolutionError) as err:
        check_evolution(_group(), new)
    assert "removed feature 'y'" in str(err.value) and "changed dtype" in str(err.value)


def test_catalog_applies_evolution_rules_and_returns_the_latest_version() -> None:
    catalog = FeatureCatalog()
    catalog.register_group(_group())
    catalog.register_group(_group(X, Y, Feature("z", pa.string())))  # compatible: replaces
    assert catalog.group("g").feature_names == ("x", "y", "z")
    with pytest.raises(SchemaEvolutionError, match="removed feature 'z'"):
        catalog.register_group(_group())
    catalog.register_group(_group(X, version=2))
    assert catalog.group("g").version == 2
    assert catalog.group("g", 1).feature_names == ("x", "y", "z")
    with pytest.raises(FeatureGroupError, match=r"unknown feature group 'g v7'; registered"):
        catalog.group("g", 7)


def test_fraud_catalog_holds_the_fraud_groups() -> None:
    assert [g.name for g in CATALOG.groups()] == ["card_features", "labels", "transactions_raw"]
    assert CATALOG.group("card_features") is CARD_FEATURES
    with pytest.raises(FeatureGroupError, match="unknown feature group 'cards'"):
        CATALOG.group("cards")
