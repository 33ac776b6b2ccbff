"""The fraud example as a user project: card transactions, per-card windows, fraud labels.

Run it: `fti plan --project examples/fraud`, `fti apply --project examples/fraud`,
`fti materialize --project examples/fraud`. The producer is `fti produce` (the synthetic
card stream with today's JSON contract).
"""

from datetime import UTC, datetime

from fti.features.project import (
    FeatureGroup,
    FeatureView,
    Field,
    Label,
    Stream,
    agg,
    transformation,
)

transactions = Stream(
    "transactions", topic="transactions", key="card_id", id="tx_id", event_time="ts",
    max_future_skew="1h", dlq_topic="transactions.dlq",
    fields=[
        Field("tx_id"), Field("card_id"), Field("merchant_id"),
        Field("amount", "float", min=0, max=1_000_000),
        Field("currency", values=["EUR", "USD", "GBP"]),
        Field("country"),
        Field("channel", values=["pos", "online", "atm"]),
        Field("ts", "timestamp"),
    ],
)

CHANNEL_CODES = {"pos": 0, "online": 1, "atm": 2}


@transformation("float")
def channel_code(event):
    """The channel as a number (pos 0, online 1, atm 2)."""
    return float(CHANNEL_CODES.get(event["channel"], -1))


@transformation("float")
def hour_of_day(event):
    """The hour of the transaction in UTC."""
    return float(datetime.fromtimestamp(event["ts"], UTC).hour)


card_activity = FeatureGroup(
    "card_activity", entity="card_id", stream=transactions, features=["amount"],
    transformations=[channel_code, hour_of_day], allowed_lateness="1h", ttl="2d",
    aggregations=[
        agg.count(window="1h", name="tx_count_1h"),
        agg.sum("amount", window="1h", name="amount_sum_1h"),
        agg.mean("amount", window="1h", name="amount_mean_1h"),
        agg.count(window="1d", name="tx_count_24h"),
        agg.sum("amount", window="1d", name="amount_sum_24h"),
        agg.mean("amount", window="1d", name="amount_mean_24h"),
        agg.distinct_count("country", window="1d", name="distinct_countries_24h"),
        agg.time_since_previous(name="secs_since_prev"),
    ],
)

labels = Stream(
    "labels", topic="labels", key="tx_id", event_time="ts", dlq_topic="transactions.dlq",
    fields=[Field("tx_id"), Field("is_fraud", "bool"), Field("ts", "timestamp")],
)
is_fraud = Label("is_fraud", stream=labels, value="is_fraud")
fraud = FeatureView("fraud", label=is_fraud, groups=[card_activity], ttl="7d")
