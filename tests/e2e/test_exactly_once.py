"""kill -9 the feature engine (`fti materialize`) at random points; after recovery every event
is stored once, with the same features an uninterrupted run computes."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fti.connectors.offline.store import LanceOfflineStore
from fti.features.project.decode import Event, StreamDecoder
from fti.features.project.tables import label_table
from fti.settings import Settings
from tests.example_projects import ExampleProject, example_project
from tests.features.project.brute_force import same_value
from tests.flows.test_service import service_env
from tests.support import wait_for

COUNT, DRIFT_AT, BAD, SEED = 12000, 6000, 0.02, 21


def reference_rows(example: ExampleProject) -> dict[str, dict]:
    """Feature rows per event id from the engine, events in stream order, no crash."""
    from fti.features.project.engine import GroupEngine

    group = example.project.groups["card_activity"]
    engine, decoder = GroupEngine(group), StreamDecoder(group.stream)
    states: dict = {}
    out = {}
    for record in example.scenario.generate(COUNT, DRIFT_AT, BAD, SEED):
        if record.stream != group.stream.name:
            continue
        event = decoder.decode(record.value, now=time.time())
        if not isinstance(event, Event):
            continue
        key = engine.entity_of(event)
        states[key], row = engine.apply(states.get(key), event)
        if isinstance(row, dict):
            out[row["tx_id"]] = row
    return out


def start(env: dict[str, str], log: Path, project: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "fti", "materialize", "--project", str(project)], env=env,
        stdout=open(log, "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )


@pytest.mark.slow
def test_kill_9_and_recover_loses_and_duplicates_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    example = example_project("fraud", settings, tmp_path / "fraud")
    group = example.project.groups["card_activity"]
    labels = label_table(example.project.labels["is_fraud"])
    env = service_env(settings, FTI_RECOVERY__DIR=str(tmp_path / "recovery"),
                      FTI_RECOVERY__SNAPSHOT_S="0.3", FTI_METRICS__FEATURES_PORT="0")
    log = tmp_path / "materialize.log"
    producer = example.producer(settings, COUNT, DRIFT_AT, BAD, SEED)
    sending = threading.Thread(target=lambda: (producer.send(COUNT, rate=1500),
                                               producer.finish()))
    sending.start()
    rng = random.Random(4)
    stored_at_kill = [0]
    offline = LanceOfflineStore(settings.offline_location)
    for _ in range(4):
        process = start(env, log, example.directory)
        # Kill while it works: after it stored some more rows, at a random moment.
        # Capped well below the end: a kill must land while events are still being stored.
        more = min(stored_at_kill[-1] + rng.randint(300, 1500), int(COUNT * 0.8))
        wait_for(lambda more=more: offline.count(group.table_name) >= more, timeout_s=90,
                 what=f"{more} rows")
        time.sleep(rng.uniform(0.0, 0.1))
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        stored_at_kill.append(offline.count(group.table_name))
    sending.join()

    running_before = log.read_text().count("flow materialize running")
    process = start(env, log, example.directory)
    valid = COUNT - producer.counts.bad_events
    try:
        # SIGTERM only once it runs (the stores may be complete already after the last kill).
        wait_for(lambda: log.read_text().count("flow materialize running") > running_before,
                 what="the final flow to start")
        wait_for(lambda: offline.count(group.table_name) >= valid
                 and offline.count(labels) >= producer.counts.labels,
                 timeout_s=120, what="every event after the crashes")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()[-2000:]

    # The kills hit a flow in the middle of the stream, and recovery state was written.
    assert all(0 < n < valid for n in stored_at_kill[1:]), stored_at_kill
    assert any((tmp_path / "recovery" / "materialize").iterdir())
    assert offline.count(group.table_name) == valid
    assert offline.count(labels) == producer.counts.labels
    rows = offline.read(group.table_name)[0].to_pylist()
    assert len({r["tx_id"] for r in rows}) == valid
    expected = reference_rows(example)
    mismatched = [r["tx_id"] for r in rows
                  if not all(same_value(r[f], expected[r["tx_id"]][f])
                             for f in group.feature_names())]
    assert not mismatched, f"{len(mismatched)} rows differ from an uninterrupted run"
    print("offline rows at each kill:", json.dumps(stored_at_kill))
