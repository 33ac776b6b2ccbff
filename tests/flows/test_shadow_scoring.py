"""Shadow scoring against the real broker: the challenger scores the same batches into
`predictions.shadow`; only the champion's predictions reach `predictions`, whatever the
challenger does."""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from fti.events import Transaction
from fti.flows import inference
from fti.flows.champion import prepare_inference
from fti.flows.inference import BatchScorer, follow_challenger
from fti.models.registry import CHALLENGER, CHAMPION, ModelRegistry
from fti.models.serving import MODEL_FILE, AliasHolder, ChallengerHolder, ChampionHolder
from fti.ops.producer import StreamProducer
from fti.settings import Settings, TopicSettings
from fti.synthetic.transactions import StreamSpec
from tests.flows.test_inference import register_model
from tests.support import read_topic, running_flow, wait_for


def register_challenger(settings: Settings, tmp: Path, seed: int) -> int:
    """Register a second version and point `challenger` at it (champion stays put)."""
    registry = ModelRegistry(settings.registry_dir)
    name = settings.inference.model_name
    champion = registry.alias(name, CHAMPION)
    version = register_model(settings, tmp, seed)
    if champion is not None:
        registry.set_alias(name, CHAMPION, champion)  # register_model made it champion
    registry.set_alias(name, CHALLENGER, version)
    return version


def shadow_topic(settings: Settings) -> str:
    """This test's shadow topic (created with the others by the `settings` fixture)."""
    assert settings.topics.shadow_predictions.startswith(TopicSettings().shadow_predictions)
    return settings.topics.shadow_predictions


def records(settings: Settings, topic: str) -> list[dict]:
    return [json.loads(m.value()) for m in read_topic(settings.kafka, topic, settle_s=0.5)]


def run_with_shadow(settings: Settings, challenger: AliasHolder, topic: str, count: int) -> int:
    """Score `count` events with shadow on; return how many valid events were produced."""
    producer = StreamProducer(settings, StreamSpec(count=count, bad_fraction=0.02, seed=7))
    producer.send(count)
    valid = producer.counts.transactions - producer.counts.bad_transactions
    stop = threading.Event()
    holder = prepare_inference(settings, stop)
    assert holder is not None and holder.current is not None
    build = lambda stop: inference.get_flow(  # noqa: E731
        settings, holder, stop, challenger=challenger, shadow=True, shadow_topic=topic)
    with running_flow(build, stop):
        wait_for(lambda: len(records(settings, settings.topics.predictions)) >= valid,
                 what="a champion prediction per event")
    return valid


def test_shadow_predictions_go_only_to_the_shadow_topic(
    settings: Settings, tmp_path: Path
) -> None:
    champion = register_model(settings, tmp_path, seed=1)
    challenger_version = register_challenger(settings, tmp_path, seed=2)
    topic = shadow_topic(settings)
    stop = threading.Event()
    challenger = follow_challenger(settings, stop)
    assert challenger.current is not None and challenger.current.version == challenger_version
    try:
        valid = run_with_shadow(settings, challenger, topic, count=800)
        wait_for(lambda: len(records(settings, topic)) >= valid, what="a shadow per event")
    finally:
        stop.set()

    served = records(settings, settings.topics.predictions)
    per_tx = Counter(p["id"] for p in served)
    assert len(per_tx) == valid and set(per_tx.values()) == {1}
    assert {p["version"] for p in served} == {champion}
    shadow = records(settings, topic)
    assert {p["id"] for p in shadow} == set(per_tx)
    assert {p["version"] for p in shadow} == {challenger_version}
    assert all(p["model"] == settings.inference.model_name for p in shadow)


def test_tampered_challenger_does_not_disturb_the_champion(
    settings: Settings, tmp_path: Path
) -> None:
    champion = register_model(settings, tmp_path, seed=3)
    version = register_challenger(settings, tmp_path, seed=4)
    registry = ModelRegistry(settings.registry_dir)
    path = registry.root / settings.inference.model_name / str(version) / MODEL_FILE
    path.chmod(0o644)
    path.write_bytes(path.read_bytes() + b"tampered")
    challenger = ChallengerHolder(registry, settings.inference.model_name)
    assert challenger.refresh() is False and challenger.current is None
    assert challenger.refresh() is False and challenger.load_failures == 1  # not retried
    topic = shadow_topic(settings)

    valid = run_with_shadow(settings, challenger, topic, count=400)

    served = records(settings, settings.topics.predictions)
    assert Counter(p["id"] for p in served).most_common(1)[0][1] == 1
    assert len(served) == valid and {p["version"] for p in served} == {champion}
    assert read_topic(settings.kafka, topic, settle_s=0.2, first_record_s=0.5) == []


@dataclass
class _RaisingModel:
    """A challenger model whose every prediction raises."""

    name: str = "fraud-xgb"
    version: int = 99

    def score(self, matrix: np.ndarray) -> np.ndarray:
        raise ValueError(f"feature shape mismatch: {matrix.shape}")


@dataclass
class _Holder:
    current: _RaisingModel | None


def test_a_raising_challenger_is_counted_and_skipped(settings: Settings, tmp_path: Path) -> None:
    champion = register_model(settings, tmp_path, seed=5)
    registry = ModelRegistry(settings.registry_dir)
    holder = ChampionHolder(registry, settings.inference.model_name)
    assert holder.refresh()
    scorer = BatchScorer(settings, holder, _Holder(_RaisingModel()), shadow=True)  # type: ignore[arg-type]
    batch = [
        Transaction(tx_id=f"t{i}", card_id="c1", merchant_id="m1", amount=10.0 + i,
                    currency="EUR", country="DE", channel="online", ts=datetime.now(UTC))
        for i in range(5)
    ]
    for _ in range(2):
        out = scorer(batch)
        assert [topic for topic, _, _ in out] == [settings.topics.predictions] * 5
        assert {json.loads(value)["version"] for _, _, value in out} == {champion}
    assert scorer.shadow_stats.errors == 2 and scorer.shadow_stats.scored == 0
    assert scorer._failed_versions == {99}  # logged once for the version


def test_shadow_off_publishes_no_shadow_even_with_a_challenger(
    settings: Settings, tmp_path: Path
) -> None:
    register_model(settings, tmp_path, seed=6)
    version = register_challenger(settings, tmp_path, seed=7)
    registry = ModelRegistry(settings.registry_dir)
    champion, challenger = (ChampionHolder(registry, settings.inference.model_name),
                            ChallengerHolder(registry, settings.inference.model_name))
    assert champion.refresh() and challenger.refresh()
    assert challenger.current is not None and challenger.current.version == version
    batch = [Transaction(tx_id="t", card_id="c", merchant_id="m", amount=1.0, currency="EUR",
                         country="DE", channel="pos", ts=datetime.now(UTC))]
    assert len(BatchScorer(settings, champion, challenger, shadow=False)(batch)) == 1
    on = BatchScorer(settings, champion, challenger, shadow=True, shadow_topic="s")
    out = on(batch)
    assert [topic for topic, _, _ in out] == [settings.topics.predictions, "s"]
    assert on.shadow_stats.scored == 1 and on.shadow_stats.agreement_rate in (0.0, 1.0)
