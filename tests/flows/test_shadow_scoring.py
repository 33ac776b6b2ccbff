"""Shadow scoring of a declared model against the real broker (the fraud example's inference
flow): the challenger of the same model name, of another kind (an MLP shadowing an XGBoost
champion), scores the same batches into `predictions.shadow`; only the champion's predictions
reach `predictions`, whatever the challenger does."""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from prometheus_client import REGISTRY

from fti.connectors.kafka.reader import KafkaRecord
from fti.flows import inference
from fti.flows.inference import ModelScorer
from fti.models.registry import ModelRegistry
from fti.models.serving import ChallengerHolder, ChampionHolder
from fti.settings import Settings, TopicSettings
from tests.champions import backfill_history, champion_and_challenger, train
from tests.example_projects import ExampleProject, example_project
from tests.support import read_topic, running_flow, wait_for

MODEL = "fraud-xgb"


def shadow_topic(settings: Settings) -> str:
    """This test's shadow topic (created with the others by the `settings` fixture)."""
    assert settings.topics.shadow_predictions.startswith(TopicSettings().shadow_predictions)
    return settings.topics.shadow_predictions


def records(settings: Settings, topic: str) -> list[dict]:
    return [json.loads(m.value()) for m in read_topic(settings.kafka, topic, settle_s=0.5)]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def trained_example(settings: Settings, tmp: Path) -> ExampleProject:
    example = example_project("fraud", settings, tmp / "fraud")
    backfill_history(settings, example.project, tmp / "history")
    return example


def run_with_shadow(settings: Settings, example: ExampleProject, count: int) -> int:
    """Score `count` events with shadow on; return how many valid events were produced."""
    producer = example.producer(settings, count, bad_fraction=0.02, seed=7)
    producer.send(count)
    valid = producer.counts.events - producer.counts.bad_events
    stop = threading.Event()
    holders = inference.prepare(settings, example.project, [MODEL], stop)
    assert holders is not None and holders[MODEL].current is not None
    build = lambda stop: inference.get_flow(  # noqa: E731
        settings, example.project, holders, stop, shadow=True)
    with running_flow(build, stop):
        wait_for(lambda: len(records(settings, settings.topics.predictions)) >= valid,
                 what="a champion prediction per event")
        wait_for(lambda: len(records(settings, shadow_topic(settings))) >= valid
                 or not read_topic(settings.kafka, shadow_topic(settings), settle_s=0.2,
                                   first_record_s=0.5),
                 what="the shadow predictions, if any")
    return valid


def test_shadow_predictions_of_another_kind_go_only_to_the_shadow_topic(
    settings: Settings, tmp_path: Path
) -> None:
    example = trained_example(settings, tmp_path)
    champion, challenger = champion_and_challenger(settings, example.project)
    registry = ModelRegistry(settings.registry_location)
    kinds = {v: registry.get(MODEL, v).params["trainer"] for v in (champion, challenger)}
    assert kinds == {champion: "xgboost", challenger: "mlp"}
    topic = shadow_topic(settings)
    scored_before = sample("fti_shadow_predictions_total", model=MODEL, version=str(challenger))

    valid = run_with_shadow(settings, example, count=800)
    wait_for(lambda: len(records(settings, topic)) >= valid, what="a shadow per event")

    served = records(settings, settings.topics.predictions)
    per_tx = Counter(p["id"] for p in served)
    assert len(per_tx) == valid and set(per_tx.values()) == {1}
    assert {p["version"] for p in served} == {champion}
    shadow = records(settings, topic)
    assert len(shadow) == valid and {p["id"] for p in shadow} == set(per_tx)
    assert {p["version"] for p in shadow} == {challenger}
    assert all(p["model"] == MODEL for p in shadow + served)
    # Another model did score them: an MLP does not give the trees' scores.
    by_id = {p["id"]: p["score"] for p in served}
    assert sum(abs(p["score"] - by_id[p["id"]]) > 1e-6 for p in shadow) > valid // 2
    assert sample("fti_shadow_predictions_total", model=MODEL,
                  version=str(challenger)) - scored_before == valid


def test_tampered_challenger_does_not_disturb_the_champion(
    settings: Settings, tmp_path: Path
) -> None:
    example = trained_example(settings, tmp_path)
    champion, version = champion_and_challenger(settings, example.project)
    registry = ModelRegistry(settings.registry_location)
    path = settings.registry_dir / MODEL / str(version) / "model.safetensors"  # the MLP's
    path.chmod(0o644)
    path.write_bytes(path.read_bytes() + b"tampered")
    load_errors = sample("fti_shadow_errors_total", model=MODEL, stage="load")
    challenger = ChallengerHolder(registry, MODEL)
    assert challenger.refresh() is False and challenger.current is None
    assert challenger.refresh() is False and challenger.load_failures == 1  # not retried
    topic = shadow_topic(settings)

    valid = run_with_shadow(settings, example, count=400)

    served = records(settings, settings.topics.predictions)
    assert Counter(p["id"] for p in served).most_common(1)[0][1] == 1
    assert len(served) == valid and {p["version"] for p in served} == {champion}
    assert read_topic(settings.kafka, topic, settle_s=0.2, first_record_s=0.5) == []
    # Ours and the flow's holder each failed to load it once.
    assert sample("fti_shadow_errors_total", model=MODEL, stage="load") - load_errors == 2


@dataclass
class _RaisingModel:
    """A challenger model whose every prediction raises."""

    name: str = MODEL
    version: int = 99
    features: list[str] = field(default_factory=lambda: ["card_activity__amount"])

    def score(self, matrix: np.ndarray) -> np.ndarray:
        raise ValueError(f"feature shape mismatch: {matrix.shape}")


@dataclass
class _Holder:
    current: _RaisingModel | None


def _batch(example: ExampleProject, n: int) -> list[KafkaRecord]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return [KafkaRecord(example.topics["transactions"], 0, i, b"c1", json.dumps(
        {"tx_id": f"t{i}", "card_id": "c1", "merchant_id": "m1", "amount": 10.0 + i,
         "currency": "EUR", "country": "DE", "channel": "online",
         "ts": (t0 + timedelta(seconds=i)).isoformat()}).encode(), 0) for i in range(n)]


def test_a_raising_challenger_is_counted_and_skipped(settings: Settings, tmp_path: Path) -> None:
    example = trained_example(settings, tmp_path)
    champion = train(settings, example.project, MODEL).version
    holder = ChampionHolder(ModelRegistry(settings.registry_location), MODEL)
    assert holder.refresh()
    scorer = ModelScorer(settings, example.project.models[MODEL], holder,
                         _Holder(_RaisingModel()), shadow=True)  # type: ignore[arg-type]
    errors = sample("fti_shadow_errors_total", model=MODEL, stage="score")
    for _ in range(2):
        out = scorer(_batch(example, 5))
        assert [topic for topic, _, _ in out] == [settings.topics.predictions] * 5
        assert {json.loads(value)["version"] for _, _, value in out} == {champion}
    assert sample("fti_shadow_errors_total", model=MODEL, stage="score") - errors == 2
    assert sample("fti_shadow_predictions_total", model=MODEL, version="99") == 0
    assert scorer._failed_versions == {99}  # logged once for the version


def test_shadow_off_publishes_no_shadow_even_with_a_challenger(
    settings: Settings, tmp_path: Path
) -> None:
    example = trained_example(settings, tmp_path)
    _, version = champion_and_challenger(settings, example.project)
    registry = ModelRegistry(settings.registry_location)
    champion, challenger = ChampionHolder(registry, MODEL), ChallengerHolder(registry, MODEL)
    assert champion.refresh() and challenger.refresh()
    assert challenger.current is not None and challenger.current.version == version
    model = example.project.models[MODEL]
    off = ModelScorer(settings, model, champion, challenger, shadow=False)
    assert [topic for topic, _, _ in off(_batch(example, 1))] == [settings.topics.predictions]
    scored = sample("fti_shadow_predictions_total", model=MODEL, version=str(version))
    agreed = sample("fti_shadow_agreements_total", model=MODEL, version=str(version))
    on = ModelScorer(settings, model, champion, challenger, shadow=True)
    out = on(_batch(example, 1))
    assert [topic for topic, _, _ in out] == [settings.topics.predictions,
                                              settings.topics.shadow_predictions]
    assert json.loads(out[1][2])["version"] == version
    assert sample("fti_shadow_predictions_total", model=MODEL, version=str(version)) == scored + 1
    assert sample("fti_shadow_agreements_total", model=MODEL,
                  version=str(version)) - agreed in (0.0, 1.0)
