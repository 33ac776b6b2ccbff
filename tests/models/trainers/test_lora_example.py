"""The preference example learns and serves: its scenario's pairs, backfilled through the
example's own definitions, train `pair-judge` (LoRA on the bundled MiniLM, CPU) with
`run_model_job`; the judge beats the majority baseline on held-out pairs, predicts ties when
they are ties, is promoted, and serves texts through `load_serving_model`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fti.features.project.applied import apply
from fti.features.project.backfill import backfill
from fti.features.project.loader import load_project
from fti.models.evaluation.model_card import CARD_FILE
from fti.models.jobs.model_job import run_model_job
from fti.models.registry import ModelRegistry
from fti.models.serving import load_serving_model
from tests.models.trainers.lora_support import EXAMPLE, scenario_pairs
from tests.support import make_settings

PAIRS = 600
MODEL = "pair-judge"


@pytest.mark.slow
def test_the_preference_example_learns_pairs_and_ties_and_serves_them(tmp_path: Path) -> None:
    settings = make_settings("127.0.0.1:9", tmp_path / "data")  # no broker: nothing is sent
    project = load_project(EXAMPLE)
    apply(project, settings.data_dir)
    file = tmp_path / "pairs.jsonl"
    file.write_text("".join(json.dumps(p) + "\n" for p in scenario_pairs(PAIRS, seed=11)))
    report = backfill(settings, project.streams["preferences"],
                      list(project.groups.values()), list(project.labels.values()), [file])
    assert report.events == PAIRS, report

    events: list = []
    result = run_model_job(settings, project, MODEL, publish=events.append)

    m = result.metrics
    held_out = m["rows"]
    assert held_out >= 100 and result.trainer == "lora"
    assert m["accuracy"] >= 0.8, m
    assert m["margin_over_majority"] >= 0.3 and m["majority_accuracy"] < 0.5, m
    assert m["per_class_recall"]["tie"] >= 0.8 and m["support"]["tie"] >= 20, m
    assert m["per_class_precision"]["tie"] >= 0.8, m
    assert result.promoted, result.reasons
    assert [e.event for e in events] == ["registered", "promoted"]

    registry = ModelRegistry(settings.registry_location)
    version = registry.get(MODEL, result.version)
    # The 5-minute budget is measured, not asserted (a timed test fails on a busy machine):
    # the fit time is recorded with the version and printed here.
    assert version.params["fit_seconds"] > 0, version.params
    assert version.params["device"] == "cpu"
    assert {c.dtype for c in version.signature.inputs} == {"string"}
    card = (settings.registry_dir / MODEL / str(result.version) / CARD_FILE).read_text()
    assert f"a margin of {m['margin_over_majority']:+.4f} over the majority baseline" in card
    assert "## Confusion matrix (test)" in card and "| `tie` |" in card

    served = load_serving_model(registry, MODEL, result.version)
    assert served.reads_text and served.classes == ("A", "B", "tie")
    prompt = "How do I water a cactus?"
    good = "Sure, happy to help. Water the cactus only when the soil is completely dry. Enjoy!"
    also_good = ("Thanks for asking. Use a pot with a drainage hole so the roots never sit "
                 "in water. I hope this helps!")
    rude = "Figure it out yourself."
    texts = np.array([[prompt, good, rude], [prompt, rude, good], [prompt, good, also_good],
                      [prompt, rude, "Whatever, not my problem."]], dtype=object)
    scores = served.score(texts)
    assert served.decide(scores) == ["A", "B", "tie", "tie"], scores
    np.testing.assert_allclose(scores[0], scores[1][[1, 0, 2]], atol=1e-5)  # a swap swaps
    print(f"\nheld-out {held_out}, accuracy {m['accuracy']:.3f}, majority "
          f"{m['majority_accuracy']:.3f}, tie recall {m['per_class_recall']['tie']:.3f} "
          f"({m['support']['tie']} ties), {version.params['steps']} steps in "
          f"{version.params['train_seconds']:.1f} s, fit with validation "
          f"{version.params['fit_seconds']:.1f} s")
