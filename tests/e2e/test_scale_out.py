"""Scale-out: the feature and inference flows as two Bytewax processes over two-partition
topics give the same rows and scores as one process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fti.connectors.kafka.clients import ensure_topics
from fti.connectors.offline.store import LanceOfflineStore
from fti.features.definitions import FEATURE_COLUMNS, FEATURES_TABLE
from fti.features.training_data import read_offline
from fti.infra.embedded_broker import EmbeddedBroker, free_port
from fti.ops.producer import StreamProducer
from fti.settings import Settings, TopicSettings
from fti.synthetic.transactions import StreamSpec
from tests.flows.test_inference import register_model
from tests.flows.test_service import service_env
from tests.support import make_settings, read_topic, wait_for

SPEC = StreamSpec(count=3000, bad_fraction=0.02, seed=31)


def two_partition_settings(broker: EmbeddedBroker, data_dir: Path) -> Settings:
    base = make_settings(broker.bootstrap_servers, data_dir)
    topics = base.topics.model_copy(update={"partitions": 2})
    settings = base.model_copy(update={"topics": TopicSettings(**topics.model_dump())})
    ensure_topics(settings.kafka, settings.topics)
    return settings


def run_processes(settings: Settings, flow: str, processes: int, done, log: Path) -> None:
    """Run `fti flow FLOW` as `processes` cluster members until `done()`; stop them all."""
    addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
    env = service_env(settings, FTI_METRICS__FEATURES_PORT="0", FTI_METRICS__INFERENCE_PORT="0")
    cluster = ["-a", addresses] if processes > 1 else []
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "fti", "flow", flow, *cluster, *(["-i", str(i)] if cluster
                                                                  else [])],
            env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
        )
        for i in range(processes)
    ]
    try:
        wait_for(done, timeout_s=120, what=f"{flow} on {processes} process(es)")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(60) for proc in procs]
    assert codes == [0] * processes, log.read_text()[-3000:]


def features_and_scores(settings: Settings, processes: int, tmp: Path) -> tuple[dict, dict]:
    producer = StreamProducer(settings, SPEC)
    producer.send(SPEC.count)
    producer.finish()
    valid = SPEC.count - producer.counts.bad_transactions
    log = tmp / f"flows-{processes}.log"
    offline = LanceOfflineStore(settings.offline_dir)
    run_processes(settings, "features", processes,
                  lambda: offline.count(FEATURES_TABLE) >= valid, log)
    rows = read_offline(settings.offline_dir).features.to_pylist()
    register_model(settings, settings.data_dir, seed=1)  # the same model in both runs
    run_processes(settings, "inference", processes,
                  lambda: len(read_topic(settings.kafka, settings.topics.predictions, 0.2))
                  >= valid, log)
    predictions = [json.loads(m.value()) for m in
                   read_topic(settings.kafka, settings.topics.predictions)]
    features = {r["tx_id"]: tuple(r[c] for c in FEATURE_COLUMNS) for r in rows}
    assert len(features) == len(rows) == valid
    scores = {p["id"]: p["score"] for p in predictions}
    assert len(scores) == len(predictions) == valid  # each event scored exactly once
    return features, scores


@pytest.mark.slow
def test_two_processes_match_one(broker: EmbeddedBroker, tmp_path: Path) -> None:
    one = two_partition_settings(broker, tmp_path / "one")
    two = two_partition_settings(broker, tmp_path / "two")
    features_1, scores_1 = features_and_scores(one, 1, tmp_path)
    features_2, scores_2 = features_and_scores(two, 2, tmp_path)
    assert features_2 == features_1
    assert scores_2.keys() == scores_1.keys()
    assert all(abs(scores_2[k] - scores_1[k]) < 1e-6 for k in scores_1)
