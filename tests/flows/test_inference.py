"""The inference flow of a declared model, on the tests' own rides project: features computed
at inference from the online state equal the feature engine's rows for the same events."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from fti.connectors.kafka.clients import ensure_topic_names
from fti.connectors.offline.store import LanceOfflineStore
from fti.features.project.declare import FeatureView
from fti.features.project.model import Model
from fti.flows import materialize
from fti.flows.inference import FeatureAssembler, matrix_of, scored_stream
from fti.settings import Settings
from tests.features.project.brute_force import assert_rows_equal, brute_force_rows
from tests.flows.test_materialize import _plain, as_event, produce, ride_events, write_project
from tests.support import running_flow, wait_for


def test_inference_features_equal_the_engine_rows_for_the_same_events(
    settings: Settings, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    rides_topic, tips_topic = f"rides-{suffix}", f"tips-{suffix}"
    project = write_project(tmp_path / "project", rides_topic, tips_topic)
    view: FeatureView = project.views["tip_model"]
    model = Model("tipper", view=view, task="regression")
    ensure_topic_names(settings.kafka, [rides_topic, tips_topic, f"{rides_topic}.dlq",
                                        f"{tips_topic}.dlq"])
    rides = ride_events(400, seed=11)
    before, after = rides[:250], rides[250:]
    groups = list(view.groups)
    accepted = {g.name: sum(1 for r in brute_force_rows(g, [as_event(x) for x in before])
                            if not isinstance(r, str)) for g in groups}
    offline = LanceOfflineStore(settings.offline_location)
    produce(settings.kafka.bootstrap_servers, rides_topic, [json.dumps(r).encode() for r in before])
    with running_flow(lambda stop: materialize.get_flow(settings, project, stop)):
        wait_for(lambda: all(offline.count(g.table_name) >= accepted[g.name] for g in groups),
                 timeout_s=90, what="the first rides materialized")

    # Inference's path: the online state after the first rides, then the new rides in one
    # batch (several per entity, out of order within the lateness, some late).
    assembler = FeatureAssembler(settings, model)
    served = assembler.rows([as_event(r) for r in after])
    assembler.store.close()

    produce(settings.kafka.bootstrap_servers, rides_topic, [json.dumps(r).encode() for r in after])
    everything = [as_event(r) for r in rides]
    want = {g.name: brute_force_rows(g, everything)[len(before):] for g in groups}
    total = {g.name: accepted[g.name] + sum(1 for r in want[g.name] if not isinstance(r, str))
             for g in groups}
    with running_flow(lambda stop: materialize.get_flow(settings, project, stop)):
        wait_for(lambda: all(offline.count(g.table_name) >= total[g.name] for g in groups),
                 timeout_s=90, what="the new rides materialized")

    # An event late for a group is still scored (the engine dead-letters it from the
    # features, yet it is an event to score); its features are those of its entity's state.
    late = {raw["ride_id"] for g in groups
            for raw, expected in zip(after, want[g.name], strict=True)
            if isinstance(expected, str)}
    assert late  # the batch does exercise the lateness rule
    assert all(row is not None for row in served)
    for g in groups:
        stored = {r["ride_id"]: _plain(r) for r in offline.read(g.table_name)[0].to_pylist()}
        for raw, row, expected in zip(after, served, want[g.name], strict=True):
            if raw["ride_id"] in late:
                continue
            assert row is not None and not isinstance(expected, str), raw["ride_id"]
            engine_row = stored[raw["ride_id"]]
            for feature in g.feature_names():
                column = view.column(g, feature)
                assert_rows_equal({feature: row[column]}, {feature: engine_row[feature]},
                                  f"{g.name} {raw['ride_id']} {feature}")
                assert_rows_equal({feature: row[column]}, {feature: expected[feature]},
                                  f"brute force {g.name} {raw['ride_id']} {feature}")

    # The feature engine got there first: the online state already holds every ride. The
    # newest ride of each driver is not counted twice, and its row is the engine's.
    newest: dict[str, dict] = {}
    for raw in rides:
        newest[raw["driver_id"]] = raw
    last = [r for r in newest.values() if r["ride_id"] not in late]
    again = FeatureAssembler(settings, model)
    rows = again.rows([as_event(r) for r in last])
    again.store.close()
    drivers = project.groups["driver_stats"]
    stored = {r["ride_id"]: r for r in offline.read(drivers.table_name)[0].to_pylist()}
    for raw, row in zip(last, rows, strict=True):
        assert row is not None
        for feature in drivers.feature_names():
            assert_rows_equal({feature: row[view.column(drivers, feature)]},
                              {feature: stored[raw["ride_id"]][feature]},
                              f"held {raw['ride_id']} {feature}")

    matrix = matrix_of(served, model.feature_columns())
    assert matrix.shape == (len(after), len(model.feature_columns()))
    assert scored_stream(model).name == "rides"
