"""The fraud example as a user project: card transactions, per-card windows, fraud labels.

Run it: `fti plan --project examples/fraud`, `fti apply --project examples/fraud`,
`fti up --project examples/fraud`; `fti demo` runs this project end to end with its
synthetic stream (`examples/fraud/scenario.py`).
"""

from datetime import UTC, datetime

from fti.features.project import (
    FeatureGroup,
    FeatureView,
    Field,
    Label,
    Model,
    Retrain,
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

#: Gradient-boosted trees on the view; retrained when the amounts drift, the live error
#: rate rises, or enough new labels arrived.
fraud_xgb = Model(
    "fraud-xgb", view=fraud, task="binary", trainer="xgboost",
    params={"n_estimators": 200, "max_depth": 4, "learning_rate": 0.1, "seed": 42},
    gates={"roc_auc": 0.75}, max_regression=0.02,
    retrain=Retrain(monitor=["amount"], volume_labels=20000, cooldown="10s"),
    description="Scores each card transaction's probability of fraud.",
)
#: The same view learned by a small PyTorch MLP, trained on demand only
#: (`fti train --model fraud-mlp`), to compare with the served trees.
fraud_mlp = Model(
    "fraud-mlp", view=fraud, task="binary", trainer="mlp",
    params={"hidden_sizes": [64, 32], "dropout": 0.1, "epochs": 40, "batch_size": 128,
            "lr": 1e-2, "weight_decay": 1e-4, "patience": 8, "seed": 42},
    gates={"roc_auc": 0.75}, serve=False,
)
