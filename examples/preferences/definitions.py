"""The preference example as a user project: pairs of responses to one prompt and which one a
person preferred (A, B or a tie), with row-level text features.

`fti plan --project examples/preferences`, `fti apply …`, `fti materialize …` store each pair
and its features; `fti features training preference_pairs …` writes the training data. The
producer is `fti produce --stream preferences`.
"""

from fti.features.project import FeatureGroup, FeatureView, Field, Label, Stream, transformation

MAX_TEXT = 4000

preferences = Stream(
    "preferences", topic="preferences", key="pair_id", id="pair_id", event_time="ts",
    dlq_topic="transactions.dlq",
    fields=[
        Field("pair_id"),
        Field("prompt"),
        Field("response_a"),
        Field("response_b"),
        Field("winner", values=["A", "B", "tie"]),
        Field("ts", "timestamp"),
    ],
)


@transformation("float")
def length_a(event):
    """Characters in response A."""
    return float(len(event["response_a"]))


@transformation("float")
def length_b(event):
    """Characters in response B."""
    return float(len(event["response_b"]))


@transformation("float")
def length_gap(event):
    """How much longer A is than B, relative to the longer one (-1 … 1)."""
    a, b = len(event["response_a"]), len(event["response_b"])
    return (a - b) / max(a, b, 1)


pair_text = FeatureGroup(
    "pair_text", entity="pair_id", stream=preferences, features=["prompt", "response_a",
                                                                 "response_b"],
    transformations=[length_a, length_b, length_gap], allowed_lateness="1d", ttl="30d",
)
winner = Label("winner", stream=preferences, value="winner")
preference_pairs = FeatureView("preference_pairs", label=winner, groups=[pair_text])
