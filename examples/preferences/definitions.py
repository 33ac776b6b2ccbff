"""The preference example as a user project: pairs of responses to one prompt and which one a
person preferred (A, B or a tie), with row-level text features, and a model that learns it.

`fti plan --project examples/preferences`, `fti apply …`, `fti materialize …` store each pair
and its features; `fti train --project examples/preferences --model pair-judge` fine-tunes
LoRA adapters on the bundled MiniLM (CPU, about a minute) and registers the judge, which
`fti up` serves. The demo stream is `scenario.py`.
"""

from fti.features.project import (
    FeatureGroup,
    FeatureView,
    Field,
    Label,
    Model,
    Stream,
    transformation,
)

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

#: Reads the prompt and both responses and predicts A, B or tie: LoRA adapters on the top two
#: layers of the bundled MiniLM score each response with its prompt; a tie wins when the
#: two scores are close.
pair_judge = Model(
    "pair-judge", view=preference_pairs, task="preference", trainer="lora",
    features=["pair_text__prompt", "pair_text__response_a", "pair_text__response_b"],
    params={"steps": 60, "batch_size": 16, "lr": 2e-3, "max_length": 96, "seed": 0},
    gates={"accuracy": 0.8, "margin_over_majority": 0.3, "min_class_recall": 0.6},
    description="Predicts which of two responses to a prompt a person prefers (A, B or a "
                "tie) from the texts alone.",
)
