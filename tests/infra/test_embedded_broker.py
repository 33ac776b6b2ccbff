"""The embedded broker: starts, creates topics, carries records, refuses a taken port; the
`fti broker` command stops on SIGTERM and exits 1 when its broker process dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fti.connectors.kafka.clients import ensure_topics, make_producer, partitions_of
from fti.errors import BrokerError
from fti.infra.embedded_broker import EmbeddedBroker, free_port, port_is_free
from fti.settings import BrokerSettings, Settings
from tests.support import read_topic, wait_for


def test_topics_are_created_once_and_carry_records(settings: Settings) -> None:
    ensure_topics(settings.kafka, settings.topics)  # a second call changes nothing
    for topic in settings.topics.all():
        assert partitions_of(settings.kafka, topic) == [0]
    producer = make_producer(settings.kafka)
    for i in range(100):
        producer.produce(settings.topics.predictions, key=b"k", value=str(i).encode())
    producer.flush(10)
    values = [int(m.value()) for m in read_topic(settings.kafka, settings.topics.predictions)]
    assert values == list(range(100))


def test_missing_topic_is_a_clear_error(settings: Settings) -> None:
    with pytest.raises(BrokerError, match="no-such-topic"):
        partitions_of(settings.kafka, "no-such-topic", timeout_s=5)


def test_a_second_broker_on_a_taken_port_fails_clearly(broker: EmbeddedBroker) -> None:
    taken = BrokerSettings(port=broker.settings.port, start_timeout_s=5)
    with pytest.raises(BrokerError, match="already in use"):
        EmbeddedBroker(taken).start()


def _start_broker_command(port: int) -> tuple[subprocess.Popen[str], str]:
    """Start `fti broker --port PORT`; return it and its "broker ready" line ("" if it ended)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTI_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "fti", "broker", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    line = process.stdout.readline() if process.stdout else ""
    while line and "broker ready" not in line:
        line = process.stdout.readline() if process.stdout else ""
    return process, line


def test_broker_command_creates_topics_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    process, first_line = _start_broker_command(port)
    try:
        assert f"127.0.0.1:{port}" in first_line and "registry.events" in first_line
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
    assert code == 0
    wait_for(lambda: port_is_free("127.0.0.1", port), timeout_s=10, what="the port to be freed")


def test_broker_command_exits_non_zero_when_its_broker_process_dies(tmp_path: Path) -> None:
    import psutil

    process, line = _start_broker_command(free_port())
    try:
        assert "broker ready" in line
        [tansu] = psutil.Process(process.pid).children()
        tansu.kill()  # as if the broker crashed
        code = process.wait(15)
        rest = process.stdout.read() if process.stdout else ""
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 1
    assert "the broker process exited with code" in rest
