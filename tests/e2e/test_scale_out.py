"""Scale-out: the fraud example's feature engine (`fti materialize --project`) and inference
flow (`fti flow inference --project`) as two Bytewax processes over two-partition topics give
the same rows and scores as one process."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from fti.connectors.kafka.clients import ensure_topic_names, ensure_topics, partitions_of
from fti.connectors.offline.store import LanceOfflineStore
from fti.features.project.loader import load_project
from fti.infra.embedded_broker import EmbeddedBroker, free_port
from fti.settings import Settings, TopicSettings
from tests.champions import backfill_history, train
from tests.example_projects import EXAMPLES, ExampleProject, example_project
from tests.flows.test_service import service_env
from tests.support import make_settings, read_topic, wait_for

COUNT, BAD, SEED = 3000, 0.02, 31
GROUP = "card_activity"


def two_partition_settings(broker: EmbeddedBroker, data_dir: Path) -> Settings:
    base = make_settings(broker.bootstrap_servers, data_dir)
    topics = base.topics.model_copy(update={"partitions": 2})
    settings = base.model_copy(update={"topics": TopicSettings(**topics.model_dump())})
    ensure_topics(settings.kafka, settings.topics)
    return settings


def two_partition_example(settings: Settings, directory: Path) -> ExampleProject:
    """The fraud example with its topics created with two partitions each."""
    suffix = uuid.uuid4().hex[:8]
    names = [f"{topic}-{suffix}" for topic in load_project(EXAMPLES / "fraud").topics()]
    ensure_topic_names(settings.kafka, names, partitions=2)
    example = example_project("fraud", settings, directory, suffix=suffix)
    assert sorted(example.project.topics()) == sorted(names)
    assert all(partitions_of(settings.kafka, t) == [0, 1] for t in names)
    return example


def run_processes(settings: Settings, argv: list[str], processes: int,
                  done: Callable[[], bool], log: Path) -> None:
    """Run `fti ARGV` as `processes` cluster members until `done()`; stop them all."""
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
    flow = argv[1] if argv[0] == "flow" else argv[0]
    running = log.read_text().count(f"flow {flow} running (") if log.exists() else 0
    env = service_env(settings, FTI_METRICS__FEATURES_PORT="0", FTI_METRICS__INFERENCE_PORT="0")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "fti", *argv,
             *(["--addresses", addresses, "--process-id", str(i)] if processes > 1 else [])],
            env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
        )
        for i in range(processes)
    ]
    try:
        wait_for(done, timeout_s=120, what=f"{argv[:2]} on {processes} process(es)")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(60) for proc in procs]
    assert codes == [0] * processes, log.read_text()[-3000:]
    assert log.read_text().count(f"flow {flow} running (") == running + processes


def features_and_scores(settings: Settings, example: ExampleProject, processes: int,
                        tmp: Path) -> tuple[dict, dict]:
    producer = example.producer(settings, COUNT, bad_fraction=BAD, seed=SEED)
    producer.send(COUNT)
    producer.finish()
    valid = COUNT - producer.counts.bad_events
    assert producer.counts.bad_events > 0
    project = str(example.directory)
    group = example.project.groups[GROUP]
    topic = example.topics["transactions"]
    log = tmp / f"flows-{processes}.log"
    offline = LanceOfflineStore(settings.offline_location)

    def streamed() -> list[dict]:  # the rows of the produced events (not the backfill's)
        return [r for r in offline.read(group.table_name)[0].to_pylist()
                if r["source_topic"] == topic]

    run_processes(settings, ["materialize", "--project", project], processes,
                  lambda: len(streamed()) >= valid, log)
    rows = streamed()
    assert {r["source_partition"] for r in rows} == {0, 1}  # both partitions were read
    run_processes(settings, ["flow", "inference", "--project", project], processes,
                  lambda: len(read_topic(settings.kafka, settings.topics.predictions, 0.2))
                  >= valid, log)
    predictions = [json.loads(m.value()) for m in
                   read_topic(settings.kafka, settings.topics.predictions)]
    features = {r["tx_id"]: tuple(r[f] for f in group.feature_names()) for r in rows}
    assert len(features) == len(rows) == valid
    scores = {p["id"]: p["score"] for p in predictions}
    assert len(scores) == len(predictions) == valid  # each event scored exactly once
    assert scores.keys() == features.keys()
    return features, scores


@pytest.mark.slow
def test_two_processes_match_one(broker: EmbeddedBroker, tmp_path: Path) -> None:
    one = two_partition_settings(broker, tmp_path / "one")
    two = two_partition_settings(broker, tmp_path / "two")
    example_1 = two_partition_example(one, tmp_path / "fraud-1")
    example_2 = two_partition_example(two, tmp_path / "fraud-2")
    for settings, example in ((one, example_1), (two, example_2)):
        backfill_history(settings, example.project, tmp_path / "history")
    train(one, example_1.project, "fraud-xgb")
    # The same model in both runs: the first run's registry, copied.
    shutil.copytree(one.registry_dir, two.registry_dir)
    features_1, scores_1 = features_and_scores(one, example_1, 1, tmp_path)
    features_2, scores_2 = features_and_scores(two, example_2, 2, tmp_path)
    assert features_2 == features_1
    assert scores_2.keys() == scores_1.keys()
    assert all(abs(scores_2[k] - scores_1[k]) < 1e-6 for k in scores_1)
