"""Bring your own events: a user project declares streams, feature groups, labels and views.

A project is a directory with `fti.yaml` (settings) and `definitions.py` (or a
`definitions/` package) written with the classes re-exported here and the aggregations of
`agg`, like a Feast feature repository:

>>> from fti.features.project import Field, Stream, FeatureGroup, agg
>>> payments = Stream("payments", topic="payments", event_time="ts", key="merchant_id",
...                   fields=[Field("merchant_id", "string"), Field("amount", "float", min=0),
...                           Field("ts", "timestamp")])
>>> group = FeatureGroup("merchant_activity", entity="merchant_id", stream=payments,
...                      aggregations=[agg.count(window="15m"), agg.mean("amount", window="1h")])
>>> group.feature_names()
['count_15m', 'amount_mean_1h']
"""

from fti.features.project import agg
from fti.features.project.agg import Aggregation
from fti.features.project.declare import (
    FeatureGroup,
    FeatureView,
    Label,
    Transformation,
    transformation,
)
from fti.features.project.fields import Field, Stream
from fti.features.project.model import Model, Retrain

__all__ = [
    "Aggregation", "FeatureGroup", "FeatureView", "Field", "Label", "Model", "Retrain", "Stream",
    "Transformation", "agg", "transformation",
]
