"""The generic monitor (flows/monitor.py) on a project written here (not an example):
rides with a numeric `distance` and a categorical `city`, a regression model on fares and a
binary model on tips. Its pure parts against brute force; then the flow over the embedded
broker, fed with kafka-python, poison between valid records on every topic: volume and drift
requests, live MAE/RMSE and accuracy/F1 equal to what the produced pairs give, poison counted."""

from __future__ import annotations

import json
import math
import random
import textwrap
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from prometheus_client import REGISTRY
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from fti.connectors.kafka.clients import ensure_topic_names
from fti.errors import ConfigError
from fti.events import Prediction, RetrainRequest
from fti.features.project.loader import Project, load_project
from fti.flows import monitor
from fti.flows.monitor import (
    Actual,
    ClassWindow,
    ErrorWindow,
    join_labels,
    watch,
)
from fti.models.drift import (
    ChampionChanged,
    ErrorObserved,
    LabelSeen,
    RetrainPolicy,
    retrain_config,
)
from fti.settings import MonitorSettings, Settings
from tests.poison import POISON
from tests.support import read_topic, running_flow, wait_for

DEFINITIONS = '''
from fti.features.project import (FeatureGroup, FeatureView, Field, Label, Model, Retrain,
    Stream, agg, transformation)

rides = Stream("rides", topic="{rides}", key="driver_id", id="ride_id", event_time="ts",
    fields=[Field("ride_id"), Field("driver_id"), Field("distance", "float", min=0),
            Field("city", "string", values=["oslo", "lima", "pune"]),
            Field("ts", "timestamp")])

@transformation("float")
def long_ride(event):
    return float(event["distance"] > 20)

drivers = FeatureGroup("drivers", entity="driver_id", stream=rides,
    transformations=[long_ride],
    aggregations=[agg.count(window="1h"), agg.mean("distance", window="1h")])

fares = Stream("fares", topic="{fares}", event_time="ts",
    fields=[Field("ride_id"), Field("fare", "float", min=0), Field("ts", "timestamp")])
tips = Stream("tips", topic="{tips}", event_time="ts",
    fields=[Field("ride_id"), Field("tipped", "bool"), Field("ts", "timestamp")])

fare_model = Model("{fare_model}", task="regression",
    view=FeatureView("fare_view", Label("fare", fares, value="fare"), [drivers]),
    retrain=Retrain(monitor=["distance", "long_ride"], volume_labels={volume}, cooldown="0s"))
tip_model = Model("{tip_model}", task="binary",
    view=FeatureView("tip_view", Label("tipped", tips, value="tipped"), [drivers]),
    retrain=Retrain(monitor=["city"], cooldown="0s"))
'''
VOLUME = 100
NOW = time.time()


def write_project(directory: Path, **names: Any) -> Project:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "definitions.py").write_text(textwrap.dedent(DEFINITIONS).format(**names))
    return load_project(directory)


def names(suffix: str) -> dict[str, Any]:
    return {"rides": f"rides-{suffix}", "fares": f"fares-{suffix}", "tips": f"tips-{suffix}",
            "fare_model": f"fare_{suffix}", "tip_model": f"tip_{suffix}", "volume": VOLUME}


def prediction(model: str, event_id: str, score: float, label: Any, version: int = 1
               ) -> Prediction:
    return Prediction(id=event_id, score=score, label=label, model=model, version=version,
                      latency_ms=1.0, ts=datetime.now(UTC))


# --- the pure parts ---------------------------------------------------------------------------


def test_a_watch_reads_fields_transformations_and_categories(tmp_path: Path) -> None:
    project = write_project(tmp_path, **names("a"))
    fare = watch(project.models["fare_a"], Settings())
    tip = watch(project.models["tip_a"], Settings())
    values = {"ride_id": "r1", "driver_id": "d", "distance": 25.0, "city": "lima", "ts": 0.0}
    assert [(n, get(values)) for n, get in fare.monitored] == [("distance", 25.0),
                                                                ("long_ride", 1.0)]
    assert [(n, get(values)) for n, get in tip.monitored] == [("city", 1.0)]
    assert (fare.id_field, fare.label_field, tip.label_field) == ("ride_id", "fare", "tipped")
    assert fare.config.volume_labels == VOLUME and tip.config.volume_labels is None
    assert fare.config.cooldown_s == 0 and fare.config.features == ("distance", "long_ride")


def test_a_monitored_name_that_is_no_number_is_refused(tmp_path: Path) -> None:
    text = textwrap.dedent(DEFINITIONS).format(**names("b")).replace(
        'monitor=["city"]', 'monitor=["driver_id"]')
    (tmp_path / "definitions.py").write_text(text)
    project = load_project(tmp_path)
    with pytest.raises(ConfigError, match="driver_id.*string field with values"):
        watch(project.models["tip_b"], Settings())


def test_the_join_pairs_either_order_with_the_task_error() -> None:
    step = join_labels({"fare": "regression", "tip": "binary"})
    state, out = step(None, prediction("fare", "r1", 12.5, 12.5))
    assert out == []
    state, out = step(state, Actual(10))
    assert state is None and [(p.error, p.actual) for p in out] == [(2.5, 10)]
    state, out = step(None, Actual(True))
    state, out = step(state, prediction("tip", "r2", 0.9, 1))
    assert state is None and out[0].error == 0.0
    _, out = step(step(None, Actual(False))[0], prediction("tip", "r3", 0.9, 1))
    assert out[0].error == 1.0
    _, out = step(step(None, Actual("n/a"))[0], prediction("fare", "r4", 1.0, 1.0))
    assert out == []  # a regression target that is no number: no pair


@pytest.mark.parametrize(("classes", "positive", "average"),
                         [((0, 1), 1, "binary"), (("A", "B", "tie"), None, "macro")])
def test_the_class_window_agrees_with_sklearn_over_its_window(
    classes: tuple[Any, ...], positive: Any, average: str,
) -> None:
    rng = random.Random(3)
    pairs = [(rng.choice(classes), rng.choice(classes)) for _ in range(700)]
    window = ClassWindow(size=250, positive=positive)
    for n, (predicted, actual) in enumerate(pairs, 1):
        window.update(predicted, actual)
        if n % 97 == 0 or n == len(pairs):
            recent = pairs[-250:] if n == len(pairs) else pairs[max(0, n - 250):n]
            got_p, got_a = [p for p, _ in recent], [a for _, a in recent]
            assert window.accuracy == pytest.approx(accuracy_score(got_a, got_p))
            kwargs = {"pos_label": positive} if average == "binary" else {}
            assert window.f1 == pytest.approx(
                f1_score(got_a, got_p, average=average, **kwargs))
            if average == "binary":
                assert window.precision == pytest.approx(precision_score(got_a, got_p))
                assert window.recall == pytest.approx(recall_score(got_a, got_p))
            else:
                assert window.precision is None and window.recall is None
    assert window.labelled_total == len(pairs) and window.window_count == 250


def test_the_error_window_gives_mae_and_rmse_of_its_window() -> None:
    rng = random.Random(4)
    pairs = [(rng.uniform(0, 100), rng.uniform(0, 100)) for _ in range(1000)]
    window = ErrorWindow(size=300)
    for predicted, actual in pairs:
        window.update(predicted, actual)
    errors = [abs(p - a) for p, a in pairs[-300:]]
    assert window.mae == pytest.approx(sum(errors) / 300, rel=1e-12)
    assert window.rmse == pytest.approx(math.sqrt(sum(e * e for e in errors) / 300), rel=1e-12)
    assert ErrorWindow().mae is None and ClassWindow().f1 is None
    with pytest.raises(ValueError, match="size >= 1"):
        ErrorWindow(size=0)


def test_a_rising_absolute_error_is_a_drift_and_volume_can_be_off() -> None:
    config = retrain_config(MonitorSettings(grace_predictions=50, drift_min_labels=0,
                                            bootstrap_labels=10**6), [], cooldown_s=0)
    policy = RetrainPolicy("fare", config)
    policy.observe(ChampionChanged(1), now=0.0)
    rng = random.Random(5)
    requests = []
    for i in range(3000):
        error = abs(rng.gauss(0, 1.0 if i < 1500 else 4.0))
        requests += policy.observe(LabelSeen(), now=float(i))
        requests += policy.observe(ErrorObserved(f"r{i}", 1, error), now=float(i))
    assert [r.reason for r in requests] == ["drift"]  # no volume rule: volume_labels None
    evidence = requests[0].evidence
    assert evidence["feature"] == "error_rate" and int(evidence["detected_at_event"][1:]) >= 1500
    assert evidence["error_rate_now"] > evidence["error_rate_before"]


# --- the flow over Kafka ----------------------------------------------------------------------


def produce(bootstrap: str, topic: str, values: list[bytes], keys: list[bytes | None]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for key, value in zip(keys, values, strict=True):
        producer.send(topic, value, key=key)
    producer.flush(30)
    producer.close()


def with_poison(valid: list[bytes]) -> list[bytes]:
    """The valid records with every poison payload in the middle."""
    half = len(valid) // 2
    return valid[:half] + list(POISON.values()) + valid[half:]


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_monitor_watches_every_declared_model(settings: Settings, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    topics = names(suffix)
    fare_model, tip_model = topics["fare_model"], topics["tip_model"]
    project = write_project(tmp_path / "project", **topics)
    settings = settings.model_copy(update={"monitor": MonitorSettings(
        grace_predictions=50, drift_min_labels=0, bootstrap_labels=10**6)})
    kafka, t = settings.kafka, settings.topics
    ensure_topic_names(kafka, [topics["rides"], topics["fares"], topics["tips"]])
    rng = random.Random(11)

    # 1000 rides; from the 600th on, distances jump from 1-10 km to 30-60 km.
    rides = [{"ride_id": f"r{i}", "driver_id": f"d{rng.randrange(5)}",
              "distance": round(rng.uniform(1, 10) if i < 600 else rng.uniform(30, 60), 2),
              "city": rng.choice(["oslo", "lima", "pune"]),
              "ts": int((NOW - 86400 + i) * 1000)} for i in range(1000)]
    # Fares for r0..r349, predicted for r0..r299 and r400..r449: 300 pairs.
    fares = [{"ride_id": r["ride_id"], "fare": round(3 + 2.5 * r["distance"], 2),
              "ts": r["ts"] + 60_000} for r in rides[:350]]
    fare_predictions = [prediction(fare_model, r["ride_id"], s, s) for r in
                        rides[:300] + rides[400:450]
                        for s in [round(3 + 2.5 * r["distance"] + rng.gauss(0, 2), 3)]]
    # Tips for r0..r199, predicted right four times in five: 200 pairs.
    tips = [{"ride_id": r["ride_id"], "tipped": rng.random() < 0.4, "ts": r["ts"] + 1000}
            for r in rides[:200]]
    tip_predictions = [prediction(tip_model, tip["ride_id"], 0.5,
                                  int(tip["tipped"]) if rng.random() < 0.8
                                  else int(not tip["tipped"])) for tip in tips]
    other = prediction("someone_else", "r1", 1.0, 1)  # another system's model: ignored
    registry = [{"model": m, "version": v, "event": e, "alias": None, "uri": "file:///m",
                 "sha256": "0" * 64}
                for m, v, e in [(fare_model, 1, "promoted"), (tip_model, 1, "promoted"),
                                (fare_model, 2, "registered"), ("someone_else", 3, "promoted")]]

    def encoded(items: list[Any]) -> list[bytes]:
        return [i.to_json() if isinstance(i, Prediction) else json.dumps(i).encode()
                for i in items]

    for topic, values in [(t.registry_events, encoded(registry)),
                          (topics["rides"], encoded(rides)),
                          (topics["fares"], encoded(fares)), (topics["tips"], encoded(tips)),
                          (t.predictions, encoded([*fare_predictions, *tip_predictions,
                                                   other]))]:
        poisoned = with_poison(values)
        produce(kafka.bootstrap_servers, topic, poisoned, [None] * len(poisoned))

    fare_pairs = [(p.score, f["fare"]) for p, f in zip(fare_predictions[:300], fares[:300],
                                                       strict=True)]
    tip_pairs = [(p.label, int(tip["tipped"])) for p, tip in zip(tip_predictions, tips,
                                                                 strict=True)]
    fare_v1, tip_v1 = {"model": fare_model, "version": "1"}, {"model": tip_model, "version": "1"}
    with running_flow(lambda stop: monitor.get_flow(settings, project, stop)):
        rides_in = {"flow": "monitor", "topic": topics["rides"]}
        wait_for(lambda: sample("fti_labelled_predictions_total", fare_v1) == len(fare_pairs)
                 and sample("fti_labelled_predictions_total", tip_v1) == len(tip_pairs)
                 and sample("fti_events_in_total", rides_in) == len(rides) + len(POISON),
                 timeout_s=90, what="every prediction joined with its label")
        fare_volume = {"model": fare_model, "reason": "volume"}
        wait_for(lambda: sample("fti_retrain_requests_total", fare_volume) >= 1
                 and sample("fti_retrain_requests_total",
                            {"model": fare_model, "reason": "drift"}) >= 1,
                 what="a volume and a drift request for the fare model")
        # The champion is known now: exactly VOLUME more labels make one more request.
        volume_before = sample("fti_retrain_requests_total", fare_volume)
        more = [{"ride_id": r["ride_id"], "fare": 10.0, "ts": r["ts"] + 60_000}
                for r in rides[500:500 + VOLUME]]
        produce(kafka.bootstrap_servers, topics["fares"], encoded(more), [None] * VOLUME)
        wait_for(lambda: sample("fti_retrain_requests_total", fare_volume) == volume_before + 1,
                 what="a volume request after VOLUME new labels")
        skipped = {topic: sample("fti_records_skipped_total", {"flow": "monitor", "topic": topic})
                   for topic in (topics["rides"], topics["fares"], topics["tips"],
                                 t.predictions, t.registry_events)}
        requests = read_topic(kafka, t.retrain_requests, settle_s=0.5)

    # Poison on every topic is counted once per record, and the flow went on past it.
    assert skipped == dict.fromkeys(skipped, float(len(POISON))), skipped

    # Live performance equals what the produced pairs give.
    errors = [abs(score - fare) for score, fare in fare_pairs]
    assert sample("fti_live_mae", fare_v1) == pytest.approx(sum(errors) / len(errors))
    assert sample("fti_live_rmse", fare_v1) == pytest.approx(
        math.sqrt(sum(e * e for e in errors) / len(errors)))
    predicted, actual = [p for p, _ in tip_pairs], [a for _, a in tip_pairs]
    assert sample("fti_live_accuracy", tip_v1) == pytest.approx(
        accuracy_score(actual, predicted))
    assert sample("fti_live_f1", tip_v1) == pytest.approx(f1_score(actual, predicted))
    assert sample("fti_live_precision", tip_v1) == pytest.approx(
        precision_score(actual, predicted))
    assert sample("fti_live_recall", tip_v1) == pytest.approx(recall_score(actual, predicted))

    # Requests: keyed by model; volume after VOLUME labels; drift names `distance`.
    decoded = [(m.key().decode(), RetrainRequest.model_validate_json(m.value()))
               for m in requests]
    assert all(key == r.model for key, r in decoded)
    fare_requests = [r for _, r in decoded if r.model == fare_model]
    volume = [r for r in fare_requests if r.reason == "volume"]
    assert all(r.evidence["rule"] == "volume" and r.evidence["new_labels"] >= VOLUME
               for r in volume)
    assert len(volume) == volume_before + 1 <= (len(fares) + VOLUME) // VOLUME
    assert volume[-1].evidence == {"rule": "volume", "new_labels": VOLUME}
    drift = [r for r in fare_requests if r.reason == "drift"]
    signals = [s for r in drift for s in r.evidence["signals"]]
    distance = [s for s in signals if s["feature"] == "distance"]
    assert distance and distance[0]["detector"] == "distance_adwin"
    assert int(distance[0]["window_end_event"][1:]) >= 600  # detected after the shift
    assert sample("fti_drift_detections_total",
                  {"model": fare_model, "detector": "distance_adwin"}) >= 1
    # No volume rule for the tip model (volume_labels None), no bootstrap (not reached).
    assert not [r for _, r in decoded if r.model == tip_model and r.reason == "volume"]
