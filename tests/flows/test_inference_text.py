"""The inference path scores a text model: records of the preference example's stream, its
features assembled from the online store, a LoRA champion (on a tiny encoder) scoring the
texts themselves, one prediction per pair."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from fti.connectors.kafka.reader import KafkaRecord
from fti.events import Prediction
from fti.features.project.applied import apply
from fti.features.project.loader import load_project
from fti.flows.inference import ModelScorer, inputs_of
from fti.models.registry import CHAMPION, ModelRegistry
from fti.models.serving import ChampionHolder
from fti.models.trainers import ModelInputs, trainer_for
from tests.models.trainers.lora_support import (
    EXAMPLE,
    TEXT_COLUMNS,
    TINY_PARAMS,
    pair_split,
    renamed,
    scenario_pairs,
    tiny_encoder,
)
from tests.support import make_settings

MODEL = "pair-judge"


def test_the_inference_path_scores_pairs_with_a_lora_champion(tmp_path: Path) -> None:
    settings = make_settings("127.0.0.1:9", tmp_path / "data")  # nothing is sent
    project = load_project(EXAMPLE)
    apply(project, settings.data_dir)
    model = project.models[MODEL]
    columns = model.feature_columns()
    assert len(columns) == 3 and model.reads_text()

    split = renamed(pair_split(80, 20, 20, seed=8), dict(zip(TEXT_COLUMNS, columns, strict=True)))
    inputs = ModelInputs(columns, "winner", "preference")
    workdir = tmp_path / "fit"
    params = TINY_PARAMS | {"base_model": str(tiny_encoder(tmp_path / "tiny")), "steps": 4}
    result = trainer_for("lora", inputs, params).fit(split, inputs, "cpu", workdir)
    staging = tmp_path / "staging"
    staging.mkdir()
    for file in result.files:
        shutil.copy(file, staging / Path(file).name)
    registry = ModelRegistry(settings.registry_location)
    registry.register(MODEL, staging, gates={"passed": True, "reasons": []}, card=None,
                      params={"trainer": "lora", "task": "preference"})
    registry.set_alias(MODEL, CHAMPION, 1)
    champion = ChampionHolder(registry, MODEL)
    assert champion.refresh() and champion.current is not None and champion.current.reads_text

    pairs = scenario_pairs(12, seed=9)
    batch = [KafkaRecord(model.view.groups[0].stream.topic, 0, i, p["pair_id"].encode(),
                         json.dumps(p).encode(), 0) for i, p in enumerate(pairs)]
    batch.append(KafkaRecord("preferences", 0, 12, None, b"not json", 0))  # skipped
    scorer = ModelScorer(settings, model, champion)
    out = scorer(batch)

    assert [topic for topic, _, _ in out] == [settings.topics.predictions] * len(pairs)
    predictions = [Prediction.model_validate_json(value) for _, _, value in out]
    assert [p.id for p in predictions] == [p["pair_id"] for p in pairs]
    texts = np.array([[p["prompt"], p["response_a"], p["response_b"]] for p in pairs],
                     dtype=object)
    scores = champion.current.score(texts)
    assert [p.label for p in predictions] == champion.current.decide(scores)
    assert {p.label for p in predictions} <= {"A", "B", "tie"}
    np.testing.assert_allclose([p.score for p in predictions], scores.max(axis=1), rtol=1e-5)
    assert all(p.model == MODEL and p.version == 1 for p in predictions)
    rows = [{c: p[t] for c, t in zip(columns, TEXT_COLUMNS, strict=True)} for p in pairs[:2]]
    assert inputs_of(rows, champion.current).tolist() == texts[:2].tolist()
