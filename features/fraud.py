"""The fraud system, declared: its feature groups, its feature view and a catalog of them.

Pure data, built at import without I/O. The declarations describe the tables the feature
flow already writes (`fti.features.definitions`), so they can replace the hand-written schemas:
`CARD_FEATURES.schema()` equals ``FEATURES_SCHEMA`` and ``fraud_v1``'s model inputs are
``FEATURE_COLUMNS`` in order (checked below, at import).

>>> CATALOG.view("fraud_v1").model_inputs() == FEATURE_COLUMNS
True
>>> from fti.features.definitions import FEATURES_SCHEMA
>>> CARD_FEATURES.schema().equals(FEATURES_SCHEMA)
True
>>> [g.table_name for g in CATALOG.groups()]
['card_features', 'labels', 'transactions_raw_v1']
"""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa

from fti.features.definitions import (
    FEATURE_COLUMNS,
    FEATURES_TABLE,
    LABEL_COLUMN,
    LABELS_TABLE,
)
from fti.features.errors import FeatureViewError
from fti.features.groups import KEY_TAG, Feature, FeatureGroup
from fti.features.views import FeatureCatalog, FeatureView, Join

_DESCRIPTIONS: dict[str, str] = {
    "amount": "Transaction amount in its currency.",
    "channel_code": "Channel as a code: pos=0, online=1, atm=2, other=-1.",
    "hour_of_day": "Hour of the event time in UTC, 0-23.",
    "is_new_country": "1 if the card was used elsewhere in the past 24 h but never in this "
    "country, else 0.",
    "distinct_countries_24h": "Distinct countries of the card in the 24 h up to this event.",
    "tx_count_1h": "Transactions of the card in the hour up to and including this one.",
    "amount_sum_1h": "Sum of the card's amounts in the hour up to and including this one.",
    "amount_mean_1h": "Mean of the card's amounts in the hour up to and including this one.",
    "tx_count_24h": "Transactions of the card in the 24 h up to and including this one.",
    "amount_sum_24h": "Sum of the card's amounts in the 24 h up to and including this one.",
    "amount_mean_24h": "Mean of the card's amounts in the 24 h up to and including this one.",
    "secs_since_prev": "Seconds since the card's previous transaction, capped at 86400 "
    "(also when there is none).",
}

#: One row per valid transaction: its features as of (and including) it.
CARD_FEATURES = FeatureGroup(
    name="card_features",
    version=1,
    entity_keys=("tx_id",),
    event_time="event_time",
    features=(
        Feature(
            "card_id",
            pa.string(),
            nullable=False,
            tags=frozenset({KEY_TAG}),
            description="Card that paid; key of the online store and of the 24 h window.",
        ),
        *(Feature(name, pa.float64(), description=_DESCRIPTIONS[name]) for name in FEATURE_COLUMNS),
    ),
    online=True,
    offline=True,
    ttl=timedelta(hours=24),
    tags=frozenset({"fraud"}),
    description="Per-transaction card features from the feature flow (1 h and 24 h windows).",
    table=FEATURES_TABLE,
)

#: One row per label event; labels arrive minutes after their transaction.
LABELS = FeatureGroup(
    name="labels",
    version=1,
    entity_keys=("tx_id",),
    event_time="event_time",
    features=(
        Feature(
            LABEL_COLUMN,
            pa.int8(),
            nullable=False,
            tags=frozenset({"label"}),
            description="1 if the transaction was fraud, else 0.",
        ),
    ),
    online=False,
    offline=True,
    tags=frozenset({"fraud"}),
    description="Fraud labels from the `labels` topic.",
    table=LABELS_TABLE,
)

#: The `transactions` topic as it arrives: a stream, not stored as a table of its own.
#: ``card_holder_name`` is not in the data; it shows that pii is refused as a model input.
TRANSACTIONS_RAW = FeatureGroup(
    name="transactions_raw",
    version=1,
    entity_keys=("tx_id",),
    event_time="ts",
    features=(
        Feature(
            "card_id",
            pa.string(),
            nullable=False,
            tags=frozenset({KEY_TAG}),
            description="Card that paid; the topic's message key.",
        ),
        Feature("merchant_id", pa.string(), nullable=False, description="Merchant paid."),
        Feature("amount", pa.float64(), nullable=False, description="Amount in `currency`."),
        Feature(
            "currency",
            pa.string(),
            nullable=False,
            tags=frozenset({"categorical"}),
            description="ISO 4217 code, e.g. EUR.",
        ),
        Feature(
            "country",
            pa.string(),
            nullable=False,
            tags=frozenset({"geo", "categorical"}),
            description="ISO 3166 country of the merchant; a slice for bias checks.",
        ),
        Feature(
            "channel",
            pa.string(),
            nullable=False,
            tags=frozenset({"categorical"}),
            description="pos, online or atm.",
        ),
        Feature(
            "card_holder_name",
            pa.string(),
            tags=frozenset({"pii"}),
            description="Synthetic, not in the data: demonstrates the pii guard.",
        ),
    ),
    online=False,
    offline=False,
    tags=frozenset({"fraud", "source"}),
    description="Raw transactions as validated by fti.features.validation.parse_transaction.",
)

#: Labels joined point-in-time to the card features of their transaction; what the trainer reads.
FRAUD_V1 = FeatureView(
    name="fraud_v1",
    version=1,
    root=LABELS,
    joins=(Join(CARD_FEATURES, on=("tx_id",)),),
    labels=(LABEL_COLUMN,),
    lookback=None,  # the training job joins without a bound (point_in_time_join, ttl=None)
    description="The fraud model's training data: one row per label.",
)

if FRAUD_V1.model_inputs() != FEATURE_COLUMNS:  # not `assert`: must hold under -O too
    raise FeatureViewError(
        f"feature view 'fraud_v1' inputs {FRAUD_V1.model_inputs()} differ from "
        f"fti.features.definitions.FEATURE_COLUMNS {FEATURE_COLUMNS}; change both together"
    )


def _catalog() -> FeatureCatalog:
    """The catalog of the fraud system's groups and views."""
    catalog = FeatureCatalog()
    for group in (CARD_FEATURES, LABELS, TRANSACTIONS_RAW):
        catalog.register_group(group)
    catalog.register_view(FRAUD_V1)
    return catalog


#: Every group and view of the fraud system.
CATALOG = _catalog()
