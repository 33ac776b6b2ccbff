"""The inference flow against the real broker: scores every event once, hot-swaps models."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import xgboost as xgb

from fti.features.definitions import FEATURE_COLUMNS
from fti.flows import inference
from fti.flows.champion import prepare_inference
from fti.models.jobs.trainer_service import RegistryEventPublisher
from fti.models.registry import CHAMPION, ModelRegistry
from fti.models.serving import MODEL_FILE
from fti.models.trainers.xgboost_model import save_model
from fti.ops.producer import StreamProducer
from fti.settings import Settings
from fti.synthetic.transactions import StreamSpec
from tests.support import read_topic, running_flow, wait_for


def register_model(settings: Settings, tmp: Path, seed: int) -> int:
    """Train a small model on random data and make it champion; return its version."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(300, len(FEATURE_COLUMNS))).astype(np.float32)
    y = (x[:, 0] + rng.normal(scale=0.5, size=300) > 0).astype(np.float32)
    booster = xgb.train({"max_depth": 2, "seed": seed}, xgb.DMatrix(x, label=y), 5)
    source = tmp / f"model-{seed}"
    source.mkdir()
    save_model(booster, source / MODEL_FILE)
    (source / "model_card.md").write_text("# test model\n")
    registry = ModelRegistry(settings.registry_dir)
    name = settings.inference.model_name
    version = registry.register(
        name, source, gates={"passed": True, "reasons": []}, promoted=True
    ).version
    registry.set_alias(name, CHAMPION, version)
    return version


def predictions(settings: Settings) -> list[dict]:
    return [json.loads(m.value()) for m in read_topic(settings.kafka, settings.topics.predictions,
                                                      settle_s=0.5)]


def test_hot_swap_under_load_scores_every_event_exactly_once(
    settings: Settings, tmp_path: Path
) -> None:
    spec = StreamSpec(count=6000, bad_fraction=0.02, seed=5)
    producer = StreamProducer(settings, spec)
    producer.send(3000)
    assert register_model(settings, tmp_path, seed=1) == 1
    stop = threading.Event()
    holder = prepare_inference(settings, stop)
    assert holder.current is not None and holder.current.version == 1

    with running_flow(lambda stop: inference.get_flow(settings, holder, stop), stop):
        wait_for(lambda: len(predictions(settings)) >= 1000, what="first predictions")
        # Promote v2 while events keep coming: the flow must follow registry.events.
        sender = threading.Thread(target=producer.send, args=(3000, 3000.0))
        sender.start()
        version = register_model(settings, tmp_path, seed=2)
        registry = ModelRegistry(settings.registry_dir)
        RegistryEventPublisher(settings)(
            registry.event(settings.inference.model_name, version, "promoted", CHAMPION)
        )
        sender.join()
        valid = producer.counts.transactions - producer.counts.bad_transactions
        wait_for(lambda: len(predictions(settings)) >= valid, what="a prediction per event")

    out = predictions(settings)
    per_tx = Counter(p["id"] for p in out)
    assert len(per_tx) == valid and set(per_tx.values()) == {1}  # none dropped, none twice
    versions = [p["version"] for p in out]  # in offset order
    assert set(versions) == {1, 2}
    first_v2 = versions.index(2)
    assert set(versions[first_v2:]) == {2}, "after the swap every event is scored by v2"
    assert all(0.0 <= p["score"] <= 1.0 and p["label"] in (0, 1) for p in out)
    assert all(p["latency_ms"] >= 0 and p["model"] == settings.inference.model_name for p in out)


def test_tampered_champion_is_refused(settings: Settings, tmp_path: Path) -> None:
    version = register_model(settings, tmp_path, seed=3)
    registry = ModelRegistry(settings.registry_dir)
    path = registry.root / settings.inference.model_name / str(version) / MODEL_FILE
    path.chmod(0o644)
    path.write_bytes(path.read_bytes() + b"tampered")
    from fti.models.serving import load_serving_model

    try:
        load_serving_model(registry, settings.inference.model_name, version)
    except Exception as ex:  # noqa: BLE001 - the type is checked below
        assert "sha256 mismatch" in str(ex)
    else:
        raise AssertionError("a tampered model was loaded")
