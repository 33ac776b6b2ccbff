"""Training rows of a declared model: labels whose event is not materialized yet are left out
(they would train and test on missing features); entity joins keep rows without history; a
dataset too small to split reaches `check_trainable`, which says why."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from fti.features.errors import TrainingDataError
from fti.features.project import FeatureGroup, FeatureView, Field, Label, Model, Stream, agg
from fti.features.project.datasets import build_model_dataset, check_trainable, model_table
from fti.features.splits import time_split
from fti.settings import TrainingSettings

PAY = Stream("pay", topic="pay", id="pid", event_time="ts",
             fields=[Field("pid"), Field("shop"), Field("x", "float"), Field("ts", "timestamp")])
OUTCOME = Stream("outcome", topic="outcome", event_time="ts",
                 fields=[Field("pid"), Field("shop"), Field("y", "int"), Field("ts", "timestamp")])
BY_EVENT = FeatureGroup("ev", entity="pid", stream=PAY, features=["x"])
BY_SHOP = FeatureGroup("shop", entity="shop", stream=PAY,
                       aggregations=[agg.count(window="1h")])


def view_rows() -> pa.Table:
    return pa.table({"pid": ["a", "b", "c"], "shop": ["s", "s", "t"], "y": [1, 0, 1],
                     "event_time": [1, 2, 3], "ev__x": [0.5, None, 2.0],
                     "shop__count_1h": [1, 2, None]})


def test_a_label_whose_event_has_no_feature_row_yet_is_left_out() -> None:
    view = FeatureView("v", Label("y", OUTCOME, value="y"), [BY_EVENT, BY_SHOP])
    model = Model("m", view=view)
    rows = model_table(model, view_rows())
    assert rows["pid"].to_pylist() == ["a", "c"]  # b's event is not materialized yet
    assert rows["shop__count_1h"].to_pylist() == [1, None]  # no shop history: kept


def test_splits_are_oldest_to_newest() -> None:
    view = FeatureView("v", Label("y", OUTCOME, value="y"), [BY_SHOP])
    table = model_table(Model("m", view=view), view_rows())
    split = time_split(table, (1 / 3, 1 / 3, 1 / 3))
    assert [p["pid"].to_pylist() for p in split.parts().values()] == [["a"], ["b"], ["c"]]


def test_too_few_rows_reach_check_trainable_not_a_split_error(tmp_path: Path) -> None:
    model = Model("m", view=FeatureView("v", Label("y", OUTCOME, value="y"), [BY_SHOP]))
    dataset = build_model_dataset(model, str(tmp_path / "offline"), TrainingSettings())
    assert [p.num_rows for p in dataset.split.parts().values()] == [0, 0, 0]
    assert dataset.record.model == "m" and dataset.record.view == "v"
    assert dataset.record.table_versions == {"label_y_v1": 0, "shop_v1": 0}
    with pytest.raises(TrainingDataError, match="model m: the train split has 0 rows"):
        check_trainable(model, dataset)
