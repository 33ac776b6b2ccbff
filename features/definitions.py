"""The fraud system's features, and the offline tables they are stored in.

One place names every feature the model sees, so the feature flow, the training job and the
inference flow cannot disagree on order or meaning.

>>> FEATURE_COLUMNS[:2]
('amount', 'channel_code')
>>> CHANNEL_CODES["online"]
1
"""

from __future__ import annotations

import pyarrow as pa

from fti.features.groups import SOURCE_FIELDS

CHANNEL_CODES: dict[str, int] = {"pos": 0, "online": 1, "atm": 2}

#: Model inputs, in the order the model receives them.
FEATURE_COLUMNS: tuple[str, ...] = (
    "amount",
    "channel_code",
    "hour_of_day",
    "is_new_country",
    "distinct_countries_24h",
    "tx_count_1h",
    "amount_sum_1h",
    "amount_mean_1h",
    "tx_count_24h",
    "amount_sum_24h",
    "amount_mean_24h",
    "secs_since_prev",
)

#: Offline feature table: one row per valid transaction, features as of (and including) it.
FEATURES_TABLE = "card_features"
FEATURES_SCHEMA = pa.schema(
    [
        pa.field("tx_id", pa.string(), nullable=False),
        pa.field("card_id", pa.string(), nullable=False),
        pa.field("event_time", pa.timestamp("us", tz="UTC"), nullable=False),
        *[pa.field(name, pa.float64()) for name in FEATURE_COLUMNS],
        *SOURCE_FIELDS,
    ]
)

#: Offline label table: one row per label event.
LABELS_TABLE = "labels"
LABELS_SCHEMA = pa.schema(
    [
        pa.field("tx_id", pa.string(), nullable=False),
        pa.field("is_fraud", pa.int8(), nullable=False),
        pa.field("event_time", pa.timestamp("us", tz="UTC"), nullable=False),
        *SOURCE_FIELDS,
    ]
)

LABEL_COLUMN = "is_fraud"
