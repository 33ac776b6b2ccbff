"""No silent loss on send: delivery reports, undelivered messages named and counted."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from fti import metrics
from fti.connectors.kafka.clients import ensure_topic_names, make_producer
from fti.connectors.kafka.logs import OncePerCondition, librdkafka_logger
from fti.connectors.kafka.publisher import DeliveryError, Publisher
from fti.settings import KafkaSettings, Settings


def _failures(topic: str) -> float:
    return metrics.PRODUCE_FAILURES.labels(topic)._value.get()


def test_every_message_is_acknowledged_and_readable_by_a_foreign_client(
    settings: Settings,
) -> None:
    topic = f"delivery-{uuid.uuid4().hex[:8]}"
    ensure_topic_names(settings.kafka, [topic])
    publisher = Publisher(settings.kafka)
    for i in range(500):
        publisher.send(topic, f'{{"i": {i}}}'.encode(), str(i).encode())
    publisher.flush(30)
    assert publisher.delivered == 500

    consumer = KafkaConsumer(topic, bootstrap_servers=settings.kafka.bootstrap_servers,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000,
                             fetch_max_wait_ms=10)
    seen = {m.key for m in consumer}
    consumer.close()
    assert seen == {str(i).encode() for i in range(500)}


def test_undelivered_messages_are_an_error_naming_topic_and_count() -> None:
    dead = KafkaSettings(bootstrap_servers="127.0.0.1:1", extra={"message.timeout.ms": "1500"})
    topic = f"nowhere-{uuid.uuid4().hex[:8]}"
    publisher = Publisher(dead)
    for _ in range(7):
        publisher.send(topic, b"{}")
    before = _failures(topic)
    with pytest.raises(DeliveryError) as caught:
        publisher.flush(5)
    assert caught.value.undelivered == {topic: 7}
    assert topic in str(caught.value) and "7" in str(caught.value)
    assert _failures(topic) - before == 7
    publisher.flush(1)  # nothing left: the failures were reported once, not again


def test_librdkafka_logs_one_line_per_condition() -> None:
    logger = librdkafka_logger()
    for f in logger.filters:
        if isinstance(f, OncePerCondition):
            f.reset()  # conditions seen by earlier tests in this process
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        producer = make_producer(KafkaSettings(bootstrap_servers="127.0.0.1:1"))
        producer.produce("anything", b"{}")  # makes the client connect
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:  # log lines arrive through poll
            producer.poll(0.1)
    finally:
        logger.removeHandler(handler)
    conditions = [re.sub(r"\d+", "#", r.getMessage()) for r in records]
    # librdkafka retries the connection every 0.1-1 s; each condition is logged once.
    assert conditions and len(conditions) == len(set(conditions)), conditions
    assert any("Connection refused" in c for c in conditions)


def test_fti_train_without_a_broker_says_so_in_one_line_before_training(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "FTI_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1",
           "FTI_DATA_DIR": str(tmp_path / "data")}
    for args in (("init", "shop"), ("apply", "--project", "shop")):  # a project, applied
        ready = subprocess.run([sys.executable, "-m", "fti", *args], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=60)
        assert ready.returncode == 0, ready.stderr
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "fti", "train", "--project", "shop"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - start < 30
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Kafka broker answered at 127.0.0.1:1" in lines[0], lines
    assert "published" not in done.stdout + done.stderr
    assert not (tmp_path / "data" / "registry").exists()  # failed before training
