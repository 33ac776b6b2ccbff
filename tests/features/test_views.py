"""Tests of feature views: key paths, the pii guard, helper columns and the catalog."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pyarrow as pa
import pytest

from fti.features.definitions import FEATURE_COLUMNS, LABEL_COLUMN
from fti.features.fraud import CARD_FEATURES, CATALOG, FRAUD_V1, LABELS, TRANSACTIONS_RAW
from fti.features.groups import Feature, FeatureGroup, SchemaEvolutionError
from fti.features.views import FeatureCatalog, FeatureView, FeatureViewError, Join

#: A group keyed by card, reachable only through card_features' secondary key card_id.
CARD_PROFILE = FeatureGroup(
    "card_profile",
    1,
    ("card_id",),
    "event_time",
    (Feature("card_age_days", pa.float64()), Feature("holder_email", pa.string(), tags={"pii"})),
)


def _view(*joins: Join, **kwargs: object) -> FeatureView:
    return FeatureView("v", 1, LABELS, joins, labels=(LABEL_COLUMN,), **kwargs)


def test_fraud_v1_inputs_are_the_feature_columns_in_order() -> None:
    assert FRAUD_V1.model_inputs() == FEATURE_COLUMNS
    assert FRAUD_V1.labels == ("is_fraud",)
    assert FRAUD_V1.root is LABELS and FRAUD_V1.joins[0].group is CARD_FEATURES
    assert "card_id" not in FRAUD_V1.model_inputs()  # a secondary key, not an input
    assert FRAUD_V1.input_schema().names == list(FEATURE_COLUMNS)


def test_fraud_v1_matches_the_training_job() -> None:
    # training_data.VIEW_NAME, spelled out to keep this module free of lancedb imports
    assert FRAUD_V1.name == "fraud_v1"
    assert FRAUD_V1.lookback is None  # point_in_time_join is called without a ttl


def test_a_group_whose_key_is_not_reachable_is_refused() -> None:
    with pytest.raises(FeatureViewError) as err:
        _view(Join(CARD_PROFILE))
    message = str(err.value)
    assert "cannot reach group 'card_profile' v1" in message
    assert "its key 'card_id' is not a column of ['labels']" in message
    assert "join a group that has 'card_id' before it" in message


def test_a_key_path_through_a_secondary_key_is_accepted() -> None:
    view = _view(Join(CARD_FEATURES), Join(CARD_PROFILE, features=("card_age_days",)))
    assert view.model_inputs() == (*FEATURE_COLUMNS, "card_age_days")


def test_a_join_not_on_the_entity_keys_is_refused() -> None:
    with pytest.raises(FeatureViewError, match=r"must be on its entity keys \['tx_id'\]"):
        _view(Join(CARD_FEATURES, on=("card_id",)))


def test_a_pii_feature_is_refused_as_model_input() -> None:
    with pytest.raises(FeatureViewError) as err:
        _view(Join(TRANSACTIONS_RAW, features=("amount", "card_holder_name")))
    message = str(err.value)
    assert "feature 'card_holder_name' of group 'transactions_raw' is tagged 'pii'" in message
    assert "cannot be a model input" in message and "helper_columns" in message


def test_default_selection_also_refuses_pii() -> None:
    with pytest.raises(FeatureViewError, match="'card_holder_name' .* tagged 'pii'"):
        _view(Join(TRANSACTIONS_RAW))


def test_forbidden_tags_are_configurable() -> None:
    view = _view(Join(TRANSACTIONS_RAW, features=("card_holder_name",)), forbid_tags=set())
    assert view.model_inputs() == ("card_holder_name",)
    with pytest.raises(FeatureViewError, match="'country' .* tagged 'geo'"):
        _view(Join(TRANSACTIONS_RAW, features=("country",)), forbid_tags={"geo"})


def test_helper_columns_may_be_pii_and_are_never_model_inputs() -> None:
    view = _view(
        Join(CARD_FEATURES),
        Join(TRANSACTIONS_RAW, features=()),
        helper_columns=("country", "card_holder_name", "card_id"),
    )
    assert view.model_inputs() == FEATURE_COLUMNS
    roles = {c.name: (c.role, c.group.name) for c in view.columns()}
    assert roles["card_holder_name"] == ("helper", "transactions_raw")
    assert roles["country"] == ("helper", "transactions_raw")
    assert roles["card_id"] == ("helper", "card_features")  # first group that has it
    assert roles["is_fraud"] == ("label", "labels")


def test_default_selection_leaves_helper_columns_out() -> None:
    view = _view(Join(TRANSACTIONS_RAW), helper_columns=("card_holder_name", "country"))
    assert view.model_inputs() == ("merchant_id", "amount", "currency", "channel")


def test_a_helper_column_selected_as_input_is_refused() -> None:
    with pytest.raises(FeatureViewError, match="'country' .* is a helper column"):
        _view(Join(TRANSACTIONS_RAW, features=("country",)), helper_columns=("country",))


def test_an_unknown_helper_column_is_refused() -> None:
    with pytest.raises(FeatureViewError, match=r"helper column 'nope' is not a column of"):
        _view(Join(CARD_FEATURES), helper_columns=("nope",))


@pytest.mark.parametrize(
    ("view_args", "words"),
    [
        ({"labels": ("amount",)}, "label 'amount' is not a feature of root group 'labels'"),
        ({"joins": (Join(CARD_FEATURES), Join(CARD_FEATURES))}, "joined twice"),
        (
            {"joins": (Join(CARD_FEATURES), Join(TRANSACTIONS_RAW, features=("amount",)))},
            "'amount' of group 'transactions_raw' is already selected from group 'card_features'",
        ),
        ({"joins": (Join(CARD_FEATURES, features=("nope",)),)}, "has no feature 'nope'"),
        ({"lookback": timedelta(0)}, "lookback must be positive"),
        ({"version": 0}, "version must be an int >= 1"),
    ],
)
def test_inconsistent_views_are_refused(view_args: dict, words: str) -> None:
    args = {"labels": (LABEL_COLUMN,), "joins": (Join(CARD_FEATURES),), **view_args}
    version = args.pop("version", 1)
    with pytest.raises(FeatureViewError) as err:
        FeatureView("v", version, LABELS, **args)
    assert words in str(err.value)
    assert str(err.value).startswith("feature view 'v': ")


def test_lookback_is_kept_and_described() -> None:
    view = _view(Join(CARD_FEATURES), lookback=timedelta(hours=6))
    assert view.lookback == timedelta(hours=6)
    assert "lookback 6:00:00" in view.describe()
    assert "lookback unlimited" in FRAUD_V1.describe()


def test_describe_shows_every_column_with_role_group_and_description() -> None:
    text = FRAUD_V1.describe()
    lines = text.splitlines()
    assert lines[0].startswith("feature view fraud_v1 v1: root labels v1 (table labels)")
    assert "join card_features v1 (table card_features) on tx_id" in lines[1]
    assert lines[2].split() == ["role", "column", "group", "dtype", "tags", "description"]
    for name in FEATURE_COLUMNS:
        (line,) = [row for row in lines if row.split()[1:2] == [name]]
        assert line.split()[:5] == ["input", name, "card_features", "v1", "double"]
    assert any(row.split()[:2] == ["label", "is_fraud"] for row in lines)
    assert "Seconds since the card's previous transaction" in text
    assert len(lines) == 3 + 1 + len(FEATURE_COLUMNS)


def test_catalog_returns_views_and_keeps_them_immutable_per_version() -> None:
    assert CATALOG.view("fraud_v1") is FRAUD_V1
    catalog = FeatureCatalog()
    view = _view(Join(CARD_FEATURES))
    catalog.register_view(view)
    catalog.register_view(view)  # the same definition again is fine
    assert catalog.group("card_features") is CARD_FEATURES  # groups come along
    with pytest.raises(FeatureViewError, match="already registered .* bump the version"):
        catalog.register_view(replace(view, lookback=timedelta(hours=1)))
    newer = catalog.register_view(replace(view, version=2, lookback=timedelta(hours=1)))
    assert catalog.view("v") is newer and catalog.view("v", 1) is view
    with pytest.raises(FeatureViewError, match="unknown feature view 'w'"):
        catalog.view("w")


def test_catalog_refuses_a_view_built_on_an_incompatible_group() -> None:
    catalog = FeatureCatalog()
    catalog.register_group(CARD_FEATURES)
    changed = replace(CARD_FEATURES, features=CARD_FEATURES.features[:-1])  # drops a feature
    with pytest.raises(SchemaEvolutionError, match="removed feature 'secs_since_prev'"):
        catalog.register_view(_view(Join(changed)))
    with pytest.raises(FeatureViewError, match="unknown feature view"):
        catalog.view("v")  # nothing was registered
