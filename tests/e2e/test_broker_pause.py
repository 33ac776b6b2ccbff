"""Broker faults under `fti up --project` (a copy of the fraud example): the broker frozen for
30 s (SIGSTOP/SIGCONT) under a steady producer; every service rides it out, the backlog drains
and nothing is lost. And the broker killed: `fti up` starts a new one, recreates the topics,
and the new events are all stored."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import psutil
import pytest

from fti.connectors.offline.store import LanceOfflineStore
from fti.infra.embedded_broker import free_port
from fti.ops.producer import ScenarioProducer
from fti.ops.scenario import DemoRecord
from fti.settings import KafkaSettings, Settings
from tests.champions import FRAUD, StreamSpec
from tests.e2e.test_up import PORT_OF, SERVICES, applied_example, logs, start_up, status_of, up_env
from tests.example_projects import ExampleProject
from tests.support import read_topic, wait_for

COUNT, BAD, SEED = 15000, 0.01, 12
PAUSE_S = 30
GROUP = "card_activity"


def _stop(runner: subprocess.Popen[bytes], out: IO[bytes]) -> int:
    """SIGTERM `fti up`, wait for it, close its output; its exit code."""
    runner.send_signal(signal.SIGTERM)
    try:
        return runner.wait(60)
    finally:
        out.close()


def _broker_of(runner: subprocess.Popen[bytes]) -> psutil.Process | None:
    brokers = [p for p in psutil.Process(runner.pid).children() if "python" not in p.name()]
    return brokers[0] if brokers else None


def _settings(data_dir: Path, broker_port: int) -> Settings:
    return Settings(data_dir=data_dir,
                    kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{broker_port}"))


def _producer(settings: Settings, example: ExampleProject, spec: StreamSpec
              ) -> ScenarioProducer:
    """The example's records (as its scenario.py makes them), from `spec` (its own start:
    the example's scenario always starts at the same time)."""
    streams = {"transaction": "transactions", "label": "labels"}
    records = (DemoRecord(streams[r.kind], r.key, r.value, r.index, r.drifted, r.bad)
               for r in FRAUD.records(spec))
    return ScenarioProducer(settings, records, example.topics, "transactions", spec.count)


@pytest.mark.slow
def test_a_30s_broker_freeze_loses_nothing_and_restarts_nothing(tmp_path: Path) -> None:
    broker_port = free_port()
    ports = {name: free_port() for name in SERVICES}
    data_dir = tmp_path / "data"
    env = up_env(data_dir, broker_port, ports)
    example = applied_example("fraud", tmp_path / "fraud", env)
    table = example.project.groups[GROUP].table_name
    out = open(tmp_path / "up.out", "wb")  # noqa: SIM115 - closed below
    runner = start_up(example.directory, env, tmp_path, out)
    try:
        for service in ("materialize", "monitor", "trainer"):
            wait_for(lambda service=service: status_of(ports[PORT_OF[service]], "/readyz") == 200
                     or runner.poll() is not None, timeout_s=60, what=f"{service} ready")
        children = psutil.Process(runner.pid).children()
        [broker] = [p for p in children if "python" not in p.name()]
        services = {p.pid for p in children} - {broker.pid}
        assert len(services) == len(PORT_OF)

        settings = _settings(data_dir, broker_port)
        producer = example.producer(settings, COUNT, bad_fraction=BAD, seed=SEED)
        sending = threading.Thread(target=producer.send, args=(COUNT, 300.0))
        sending.start()
        time.sleep(8)  # let traffic flow first
        broker.send_signal(signal.SIGSTOP)
        time.sleep(PAUSE_S)  # the fault itself: the broker answers nothing for 30 s
        broker.send_signal(signal.SIGCONT)
        sending.join()
        producer.finish()

        offline = LanceOfflineStore(settings.offline_location)
        dlq_topic = example.dlq_topic("transactions")

        def dlq() -> int:
            return len(read_topic(settings.kafka, dlq_topic, settle_s=0.5))

        valid = producer.counts.events - producer.counts.bad_events
        assert producer.counts.events == COUNT and producer.counts.bad_events > 0
        wait_for(lambda: offline.count(table) >= valid, timeout_s=120,
                 what="the backlog drained into the offline store")
        assert offline.count(table) == valid
        assert dlq() == producer.counts.bad_events
        now = {p.pid for p in psutil.Process(runner.pid).children()} - {broker.pid}
        assert now == services, (tmp_path / "up.out").read_text()[-3000:] + logs(data_dir)
        for service in ("materialize", "monitor", "trainer"):
            assert status_of(ports[PORT_OF[service]], "/healthz") == 200, service
        assert runner.poll() is None
    finally:
        code = _stop(runner, out)
    assert code == 0, f"{(tmp_path / 'up.out').read_text()}\n{logs(data_dir)}"
    text = json.dumps((tmp_path / "up.out").read_text())
    assert "restarting" not in text.lower(), text[-2000:]


@pytest.mark.slow
def test_a_killed_broker_is_replaced_and_the_new_topics_are_read_from_the_start(
    tmp_path: Path,
) -> None:
    broker_port = free_port()
    ports = {name: free_port() for name in SERVICES}
    data_dir = tmp_path / "data"
    env = up_env(data_dir, broker_port, ports)
    example = applied_example("fraud", tmp_path / "fraud", env)
    table_name = example.project.groups[GROUP].table_name
    out = open(tmp_path / "up.out", "wb")  # noqa: SIM115 - closed below
    runner = start_up(example.directory, env, tmp_path, out)
    up_log = tmp_path / "up.out"
    try:
        wait_for(lambda: status_of(ports["features"], "/readyz") == 200
                 or runner.poll() is not None, timeout_s=60, what="materialize ready")
        settings = _settings(data_dir, broker_port)
        offline = LanceOfflineStore(settings.offline_location)
        before = _producer(settings, example, StreamSpec(count=2000, bad_fraction=0.01, seed=21))
        before.send(2000, 1000.0)
        before.finish()
        stored_before = before.counts.events - before.counts.bad_events
        wait_for(lambda: offline.count(table_name) >= stored_before, timeout_s=90,
                 what="the first events stored")

        old_broker = _broker_of(runner)
        assert old_broker is not None
        old_broker.kill()  # memory storage: every topic and offset is gone with it
        wait_for(lambda: "topics recreated" in up_log.read_text(), timeout_s=60,
                 what="fti up to start a new broker and recreate the topics")
        new_broker = _broker_of(runner)
        assert new_broker is not None and new_broker.pid != old_broker.pid

        # Fewer events than before: at offsets the old incarnation already used. Later in
        # event time than the first ones (the cards' windows carry on across the restart).
        after = _producer(settings, example, StreamSpec(
            count=1200, bad_fraction=0.01, seed=22, start=datetime(2026, 1, 2, tzinfo=UTC)))
        after.send(1200, 1000.0)
        after.finish()
        stored_after = after.counts.events - after.counts.bad_events
        assert after.counts.bad_events > 0
        wait_for(lambda: offline.count(table_name) >= stored_before + stored_after,
                 timeout_s=120, what="the events sent to the new broker stored")
        time.sleep(3)  # nothing more should arrive
        table, _ = offline.read(table_name)
        assert table.num_rows == stored_before + stored_after
        ids = table.column("source_topic_id").to_pylist()
        assert len(set(ids)) == 2 and ids.count(ids[-1]) == stored_after
        assert len(set(table.column("tx_id").to_pylist())) == table.num_rows
        dlq = read_topic(settings.kafka, example.dlq_topic("transactions"), settle_s=0.5)
        assert len(dlq) == after.counts.bad_events  # the old DLQ died with its broker
        text = up_log.read_text()
        assert "the embedded broker exited with code" in text and "recreating the topics" in text
        assert "was recreated" in logs(data_dir)  # a service said why it starts over
        assert runner.poll() is None
    finally:
        code = _stop(runner, out)
    assert code == 0, f"{up_log.read_text()[-3000:]}\n{logs(data_dir)[-5000:]}"
