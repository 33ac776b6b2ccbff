"""The generic feature engine over Kafka, on a project written here (not an example): rides
keyed by driver and by rider, numeric and categorical fields, a numeric label. Produced with
kafka-python, poison and late events between valid ones; the offline rows, the online state
and the point-in-time training data are checked against a brute-force recomputation."""

from __future__ import annotations

import json
import random
import textwrap
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from kafka import KafkaProducer

from fti.connectors.kafka.clients import ensure_topic_names
from fti.connectors.offline.store import LanceOfflineStore
from fti.connectors.online import open_online_store
from fti.features.project.backfill import backfill
from fti.features.project.decode import Event
from fti.features.project.engine import EntityState, GroupEngine
from fti.features.project.loader import Project, load_project
from fti.features.project.tables import label_table
from fti.features.project.training import read_view
from fti.flows import materialize
from fti.settings import OnlineStoreSettings, Settings
from tests.features.project.brute_force import assert_rows_equal, brute_force_rows, same_value
from tests.poison import POISON
from tests.support import read_topic, running_flow, wait_for

DEFINITIONS = '''
from fti.features.project import (FeatureGroup, FeatureView, Field, Label, Stream, agg,
    transformation)

rides = Stream("rides", topic="{rides}", key="driver_id", id="ride_id", event_time="ts",
    fields=[Field("ride_id"), Field("driver_id"), Field("rider_id"),
            Field("km", "float", min=0, max=500), Field("fare", "float", min=0),
            Field("city", "string", values=["oslo", "lima", "pune"]),
            Field("rider_name", "string", required=False, tags={{"pii"}}),
            Field("ts", "timestamp")])

@transformation("float")
def fare_per_km(event):
    return event["fare"] / max(event["km"], 0.1)

drivers = FeatureGroup("driver_stats", entity="driver_id", stream=rides,
    allowed_lateness="2m", transformations=[fare_per_km],
    aggregations=[agg.count(window="10m"), agg.mean("fare", window="1h"),
                  agg.distinct_count("city", window="1h"), agg.time_since_previous()])
riders = FeatureGroup("rider_stats", entity="rider_id", stream=rides, features=["rider_name"],
    allowed_lateness="2m",
    aggregations=[agg.count(window="1h"), agg.sum("km", window="1h"), agg.max("fare", window="1h"),
                  agg.last("city")])

tips = Stream("tips", topic="{tips}", event_time="ts",
    fields=[Field("ride_id"), Field("driver_id"), Field("rider_id"),
            Field("tip", "float", min=0), Field("ts", "timestamp")])
tip = Label("tip", stream=tips, value="tip")
tip_model = FeatureView("tip_model", label=tip, groups=[drivers, riders], ttl="1d")
'''
T0 = datetime(2026, 11, 1, tzinfo=UTC).timestamp()


def write_project(directory: Path, rides: str, tips: str) -> Project:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "definitions.py").write_text(
        textwrap.dedent(DEFINITIONS).format(rides=rides, tips=tips))
    return load_project(directory)


def ride_events(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    clock, out = T0, []
    for i in range(n):
        clock += rng.choice([0.0, 1.0, 7.0, 30.0, 95.0])
        late = rng.random() < 0.03  # well past the 2-minute lateness: rule `late`
        t = clock - (600 if late else rng.choice([0.0, 0.0, 20.0, 100.0]))
        out.append({"ride_id": f"r{i}", "driver_id": f"d{rng.randrange(6)}",
                    "rider_id": f"u{rng.randrange(9)}", "km": round(rng.uniform(0.5, 40), 2),
                    "fare": round(rng.uniform(3, 90), 2), "city": rng.choice(["oslo", "lima",
                                                                                "pune"]),
                    "rider_name": rng.choice([None, "Ann", "Bo"]), "ts": int(t * 1000)})
    return out


def produce(bootstrap: str, topic: str, values: list[bytes], key: str | None = None) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for v in values:
        producer.send(topic, v)
    producer.flush(30)
    producer.close()


def as_event(raw: dict[str, Any]) -> Event:
    values = {**raw, "ts": raw["ts"] / 1000}
    return Event(values, values["ts"])


@pytest.mark.parametrize("online_backend", ["sqlite", "redis"])
def test_a_declared_project_materializes_and_trains_point_in_time(
    settings: Settings, tmp_path: Path, online_backend: str, request: pytest.FixtureRequest,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    if online_backend == "redis":
        settings = settings.model_copy(update={"online": OnlineStoreSettings(
            backend="redis", redis_url=request.getfixturevalue("redis_url"),
            key_prefix=f"test-{suffix}")})
    rides_topic, tips_topic = f"rides-{suffix}", f"tips-{suffix}"
    project = write_project(tmp_path / "project", rides_topic, tips_topic)
    kafka = settings.kafka
    ensure_topic_names(kafka, [rides_topic, tips_topic, f"{rides_topic}.dlq",
                               f"{tips_topic}.dlq"])
    rides = ride_events(600, seed=5)
    bad = [json.dumps({**rides[3], "city": "rome"}).encode(),
           json.dumps({**rides[4], "km": -1}).encode()]
    poison = list(POISON.values())
    half = len(rides) // 2
    produce(kafka.bootstrap_servers, rides_topic,
            [json.dumps(r).encode() for r in rides[:half]] + poison + bad
            + [json.dumps(r).encode() for r in rides[half:]])
    rng = random.Random(9)
    labelled = rng.sample(rides, 150)
    tips = [{"ride_id": r["ride_id"], "driver_id": r["driver_id"], "rider_id": r["rider_id"],
             "tip": round(rng.uniform(0, 10), 2),
             "ts": r["ts"] + rng.choice([0, 5_000, 3_600_000])} for r in labelled]
    produce(kafka.bootstrap_servers, tips_topic, [json.dumps(t).encode() for t in tips])

    events = [as_event(r) for r in rides]
    drivers, riders = project.groups["driver_stats"], project.groups["rider_stats"]
    want = {g.name: brute_force_rows(g, events) for g in (drivers, riders)}
    stored = {g.name: sum(1 for r in want[g.name] if not isinstance(r, str))
              for g in (drivers, riders)}
    late = {g.name: len(want[g.name]) - stored[g.name] for g in (drivers, riders)}
    assert min(late.values()) > 0  # the stream does exercise the lateness rule
    assert all(r == "late" for g in want.values() for r in g if isinstance(r, str))

    offline = LanceOfflineStore(settings.offline_location)
    dlq_topic = f"{rides_topic}.dlq"
    with running_flow(lambda stop: materialize.get_flow(settings, project, stop)):
        wait_for(lambda: all(offline.count(g.table_name) >= stored[g.name]
                             for g in (drivers, riders))
                 and offline.count(label_table(project.labels["tip"])) >= len(tips),
                 timeout_s=90, what="every group row and label stored")
        expected_dlq = len(poison) + len(bad) + sum(late.values())
        wait_for(lambda: len(read_topic(kafka, dlq_topic, settle_s=0.3)) >= expected_dlq,
                 what="poison, invalid and late events dead-lettered")
        # still running after the poison: one more ride is materialized
        extra = {**rides[-1], "ride_id": "r-extra", "ts": max(r["ts"] for r in rides) + 1000}
        produce(kafka.bootstrap_servers, rides_topic, [json.dumps(extra).encode()])
        wait_for(lambda: offline.count(drivers.table_name) >= stored["driver_stats"] + 1,
                 what="the flow still running")

    dlq = read_topic(kafka, dlq_topic, settle_s=0.3)
    rules = [json.loads(m.value())["rule"] for m in dlq]
    assert len(dlq) == expected_dlq
    assert rules.count("late") == sum(late.values())
    assert {"enum:city", "range:km", "schema"} <= set(rules)

    # Offline rows equal the brute force, event by event.
    for group in (drivers, riders):
        table, _ = offline.read(group.table_name)
        got = {r["ride_id"]: _plain(r) for r in table.to_pylist() if r["ride_id"] != "r-extra"}
        expected = [r for r in want[group.name] if not isinstance(r, str)]
        assert len(got) == len(expected) == table.num_rows - 1
        for exp in expected:  # rows are written entity by entity within a batch
            row = got[exp["ride_id"]]
            row["event_time"] = row["event_time"].timestamp()
            assert_rows_equal(row, exp, f"{group.name} {exp['ride_id']}")

    # Online: each entity's state gives inference the same features the engine would.
    store = open_online_store(settings)
    engine = GroupEngine(drivers)
    state: dict[str, EntityState] = {}
    for e in events + [as_event(extra)]:
        key = engine.entity_of(e)
        state[key], _ = engine.apply(state.get(key), e)
    probe = as_event({**extra, "ride_id": "probe", "ts": extra["ts"] + 60_000})
    for key, mine in state.items():
        row = store.get_many([f"{drivers.table_name}:{key}"])[f"{drivers.table_name}:{key}"]
        served = engine.preview(EntityState.from_json(row.window), probe)
        assert_rows_equal(served, engine.preview(mine, probe), f"online {key}")
    store.close()

    # Point-in-time training data equals the brute force from the produced events.
    table = read_view(project.views["tip_model"], settings.offline_location)
    assert "rider_stats__rider_name" not in table.column_names  # pii never a model input
    assert table.num_rows == len(tips)
    everything = [*events, as_event(extra)]
    accepted = {g.name: [(e, r) for e, r in zip(everything, brute_force_rows(g, everything),
                                                 strict=True)
                         if not isinstance(r, str)] for g in (drivers, riders)}
    for got in table.to_pylist():
        t = got["event_time"].timestamp()
        for group in (drivers, riders):
            key = got[group.entity]
            candidates = [r for e, r in accepted[group.name]
                          if e.values[group.entity] == key and t - 86400 <= e.time <= t]
            best = None
            for r in candidates:  # latest event time; ties: processed last
                if best is None or r["event_time"] >= best["event_time"]:
                    best = r
            for feature in project.views["tip_model"].features:
                prefix, name = feature.split("__", 1)
                if prefix != group.name:
                    continue
                expect = None if best is None else best[name]
                assert same_value(got[feature], expect), (feature, got["ride_id"])

    # Backfill of the same events from files gives the very same rows.
    files = tmp_path / "history"
    files.mkdir()
    pq.write_table(pa.Table.from_pylist(rides[:200]), files / "a.parquet")
    pacsv.write_csv(pa.Table.from_pylist(rides[200:400]), files / "b.csv")
    (files / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rides[400:]))
    other = settings.model_copy(update={"data_dir": tmp_path / "backfilled"})
    report = backfill(other, project.streams["rides"], [drivers, riders], [],
                      [files / "a.parquet", files / "b.csv", files / "c.jsonl"])
    assert report.rows == len(rides) and not set(report.rejected) - {"late"}
    for group in (drivers, riders):
        streamed = {r["ride_id"]: _plain(r) for r in offline.read(group.table_name)[0].to_pylist()
                    if r["ride_id"] != "r-extra"}
        filled = LanceOfflineStore(other.offline_location).read(group.table_name)[0].to_pylist()
        assert {r["ride_id"]: _plain(r) for r in filled} == streamed, group.name
    again = backfill(other, project.streams["rides"], [drivers, riders], [],
                     [files / "a.parquet", files / "b.csv", files / "c.jsonl"])
    assert sum(again.written.values()) == 0  # exactly once by file and row


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("source_")}
