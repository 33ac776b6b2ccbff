"""Hot swap across model kinds (issue #12), on a project written here (not an example): one
model name declared with `trainer="xgboost"`, its v1 champion serving a steady stream; the
declaration changed to `trainer="mlp"` (definitions.py rewritten, reloaded, applied) and v2
trained and promoted while events flow. Every event is scored exactly once, the version
switches between two batches (v1 up to some event, v2 from the next on), and both kinds
served the stream."""

from __future__ import annotations

import json
import textwrap
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from fti.connectors.kafka.clients import ensure_topic_names
from fti.connectors.kafka.reader import TopicsReader
from fti.connectors.offline.store import LanceOfflineStore
from fti.features.project.applied import apply, check_applied
from fti.features.project.loader import Project, load_project
from fti.features.project.tables import label_table
from fti.flows import inference
from fti.models.jobs.trainer_service import RegistryEventPublisher
from fti.models.registry import ModelRegistry
from fti.ops.producer import ScenarioProducer
from fti.settings import Settings
from tests.champions import FRAUD, StreamSpec, producer, records, train
from tests.e2e.test_exactly_once import start as start_materialize
from tests.flows.test_service import service_env
from tests.support import read_topic, running_flow, wait_for

DEFINITIONS = '''
from datetime import UTC, datetime

from fti.features.project import (FeatureGroup, FeatureView, Field, Label, Model, Stream, agg,
    transformation)

transactions = Stream("transactions", topic="{events}", key="card_id", id="tx_id",
    event_time="ts", max_future_skew="1h", dlq_topic="{events}.dlq",
    fields=[Field("tx_id"), Field("card_id"), Field("merchant_id"),
            Field("amount", "float", min=0, max=1_000_000),
            Field("currency", values=["EUR", "USD", "GBP"]), Field("country"),
            Field("channel", values=["pos", "online", "atm"]), Field("ts", "timestamp")])

@transformation("float")
def channel_code(event):
    return float(["pos", "online", "atm"].index(event["channel"]))

@transformation("float")
def hour(event):
    return float(datetime.fromtimestamp(event["ts"], UTC).hour)

cards = FeatureGroup("cards", entity="card_id", stream=transactions, features=["amount"],
    transformations=[channel_code, hour], allowed_lateness="1h", ttl="2d",
    aggregations=[agg.count(window="1h"), agg.mean("amount", window="1h"),
                  agg.count(window="1d"), agg.mean("amount", window="1d"),
                  agg.distinct_count("country", window="1d"), agg.time_since_previous()])

labels = Stream("labels", topic="{labels}", key="tx_id", event_time="ts",
    dlq_topic="{events}.dlq",
    fields=[Field("tx_id"), Field("is_fraud", "bool"), Field("ts", "timestamp")])
risk = FeatureView("risk", label=Label("is_fraud", stream=labels, value="is_fraud"),
                   groups=[cards])

scorer = Model("scorer", view=risk, task="binary", {trainer},
               gates={{"roc_auc": 0.7}}, max_regression=0.05)
'''
XGBOOST = 'trainer="xgboost", params={"n_estimators": 120, "max_depth": 4, "seed": 3}'
MLP = ('trainer="mlp", params={"hidden_sizes": [32, 16], "epochs": 25, "batch_size": 128, '
       '"lr": 1e-2, "patience": 5, "seed": 3}')
HISTORY, RATE, SEED = 3000, 250.0, 5
#: Live events sent after v2 is promoted: the stream goes on past the swap.
AFTER = 1500


def write_project(directory: Path, topics: dict[str, str], trainer: str) -> Project:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "definitions.py").write_text(
        textwrap.dedent(DEFINITIONS).format(trainer=trainer, **topics))
    return load_project(directory)


def valid_ids(spec: StreamSpec, produced: int) -> set[str]:
    """The ids of the valid events among the first `produced` of `spec`."""
    ids = set()
    for r in records(spec):
        if r.stream != "transactions":
            continue
        if r.index >= produced:
            break
        if not r.bad:
            ids.add(json.loads(r.value)["tx_id"])
    return ids


class Steady(threading.Thread):
    """Sends the producer's next events at RATE until halted."""

    def __init__(self, source: ScenarioProducer) -> None:
        super().__init__(daemon=True)
        self.source, self.halt = source, threading.Event()

    def run(self) -> None:
        while not self.halt.is_set() and not self.source.exhausted:
            self.source.send(50, RATE)


class Tail:
    """The predictions topic (one partition) read so far, in offset order."""

    def __init__(self, settings: Settings) -> None:
        self.reader = TopicsReader(settings.kafka, [settings.topics.predictions])
        self.values: list[tuple[int, dict]] = []

    def __call__(self) -> list[tuple[int, dict]]:
        for _ in range(20):
            batch = self.reader.read_batch(10_000, 0.05)
            self.values.extend((r.offset, json.loads(r.value)) for r in batch)
            if not batch:
                break
        return self.values


@pytest.mark.slow
def test_a_model_changes_kind_while_events_flow(settings: Settings, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    topics = {"events": f"payments-{suffix}", "labels": f"outcomes-{suffix}"}
    directory = tmp_path / "project"
    project = write_project(directory, topics, XGBOOST)
    ensure_topic_names(settings.kafka, project.topics())
    apply(project, settings.data_dir)
    spec = StreamSpec(count=HISTORY + 100_000, bad_fraction=0.01, seed=SEED)
    source = producer(settings, project, spec)

    # The feature engine runs throughout, as a service; the first events become history.
    log = tmp_path / "materialize.log"
    env = service_env(settings, FTI_METRICS__FEATURES_PORT="0")
    engine = start_materialize(env, log, directory)
    offline = LanceOfflineStore(settings.offline_location)
    tail = Tail(settings)
    sending = Steady(source)
    table = project.groups["cards"].table_name
    try:
        source.send(HISTORY)
        history = HISTORY - source.counts.bad_events
        wait_for(lambda: offline.count(table) >= history
                 and offline.count(label_table(project.labels["is_fraud"])) >= source.counts.labels,
                 timeout_s=120, what="the history materialized")
        first = train(settings, project, "scorer")
        assert (first.version, first.trainer) == (1, "xgboost")

        stop = threading.Event()
        holders = inference.prepare(settings, project, None, stop)
        assert holders is not None and holders["scorer"].current is not None
        with running_flow(lambda stop: inference.get_flow(settings, project, holders, stop), stop):
            wait_for(lambda: len(tail()) >= history, timeout_s=120,
                     what="the history scored by v1")
            sending.start()
            wait_for(lambda: len(tail()) >= history + 500, timeout_s=120,
                     what="live events scored by v1")
            # The user changes the declaration's kind, reloads and applies it, and trains.
            changed = write_project(directory, topics, MLP)
            assert changed.models["scorer"].trainer == "mlp"
            apply(changed, settings.data_dir)
            check_applied(changed, settings.data_dir)
            second = train(settings, changed, "scorer", publish=RegistryEventPublisher(settings))
            assert sending.is_alive(), "the producer stopped before v2 was promoted"
            assert (second.version, second.trainer) == (2, "mlp")
            sent_at_promotion = source.counts.events
            wait_for(lambda: source.counts.events >= sent_at_promotion + AFTER,
                     timeout_s=60, what=f"{AFTER} more events sent after the promotion")
            sending.halt.set()
            sending.join(30)
            produced = source.counts.events
            valid = valid_ids(spec, produced)
            wait_for(lambda: len({p["id"] for _, p in tail()}) >= len(valid), timeout_s=120,
                     what="every event scored")
            time.sleep(2)  # anything scored twice would arrive by now
            tail()
    finally:
        sending.halt.set()
        engine.terminate()
        assert engine.wait(30) == 0, log.read_text()[-3000:]
    tail.reader.close()

    predictions = [p for _, p in sorted(tail.values, key=lambda item: item[0])]
    assert len(read_topic(settings.kafka, settings.topics.predictions)) == len(predictions)
    # Every valid event scored exactly once; no invalid one.
    per_event = Counter(p["id"] for p in predictions)
    assert set(per_event) == valid and set(per_event.values()) == {1}
    assert {p["model"] for p in predictions} == {"scorer"}
    # The version switches once, between two batches: v1 up to some event, v2 from the next.
    versions = [p["version"] for p in predictions]
    switch = versions.index(2)
    assert set(versions[:switch]) == {1} and set(versions[switch:]) == {2}, "versions interleave"
    order = [FRAUD.tx_index_of(p["id"]) for p in predictions]
    assert order == sorted(order)  # scored in the order produced: one partition, one worker
    batches: dict[tuple[str, float], set[int]] = defaultdict(set)
    for p in predictions:  # a batch's predictions share their time and latency
        batches[(p["ts"], p["latency_ms"])].add(p["version"])
    assert all(len(v) == 1 for v in batches.values()), "a batch was scored by two versions"
    # While events flowed: live events on both sides of the switch.
    assert history + 500 <= switch, (switch, history)
    assert len(predictions) - switch >= AFTER // 3, (switch, len(predictions))
    registry = ModelRegistry(settings.registry_location)
    kinds = {v: registry.get("scorer", v).params["trainer"] for v in (1, 2)}
    assert kinds == {1: "xgboost", 2: "mlp"}
    assert registry.alias("scorer") == 2
    print(f"switched to v2 (mlp) at prediction {switch} of {len(predictions)}")
