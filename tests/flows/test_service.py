"""A flow as an operator runs it: a `fti materialize --project` process on the fraud example,
metrics over HTTP, graceful stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from fti.connectors.offline.store import LanceOfflineStore
from fti.infra.embedded_broker import free_port
from fti.settings import Settings
from tests.example_projects import example_project
from tests.support import wait_for


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that points a service process at this test's broker, topics and dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTI_")}
    t = settings.topics
    env.update({
        "FTI_DATA_DIR": str(settings.data_dir),
        "FTI_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "FTI_TOPICS__PREDICTIONS": t.predictions,
        "FTI_TOPICS__RETRAIN_REQUESTS": t.retrain_requests,
        "FTI_TOPICS__REGISTRY_EVENTS": t.registry_events,
        "FTI_TOPICS__SHADOW_PREDICTIONS": t.shadow_predictions,
        "FTI_TOPICS__TRAINING_JOBS": t.training_jobs,
        **extra,
    })
    return env


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_materialize_service_serves_metrics_and_stops_gracefully(
    settings: Settings, tmp_path: Path
) -> None:
    example = example_project("fraud", settings, tmp_path / "fraud")
    group = example.project.groups["card_activity"]
    port = free_port()
    log = open(tmp_path / "materialize.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "fti", "materialize", "--project", str(example.directory)],
        env=service_env(settings, FTI_METRICS__FEATURES_PORT=str(port)),
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        count = 1000
        producer = example.producer(settings, count, bad_fraction=0.05, seed=9)
        producer.send(count)
        topic = example.topics["transactions"]
        bad = producer.counts.bad_events
        assert bad > 0

        def counted() -> bool:
            try:
                text = scrape(port)
            except OSError:
                return False
            return (metric_value(text, "fti_events_in_total", flow="materialize", topic=topic)
                    >= count
                    and metric_value(text, "fti_dlq_events_total", topic=topic) >= bad)

        wait_for(counted, what="events and DLQ counts on the service's /metrics")
        text = scrape(port)
        assert metric_value(text, "fti_events_in_total", flow="materialize", topic=topic) == count
        assert metric_value(text, "fti_dlq_events_total", flow="materialize", topic=topic) == bad
        assert metric_value(text, "fti_feature_write_seconds_count", store="offline") >= 1
        assert metric_value(text, "fti_feature_write_seconds_count", store="online") >= 1
        offline = LanceOfflineStore(settings.offline_location)
        wait_for(lambda: offline.count(group.table_name) == count - bad, what="offline rows")
        assert metric_value(scrape(port), "fti_feature_rows_total",
                            store=group.table_name) == count - bad
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
    text = (tmp_path / "materialize.log").read_text()
    assert code == 0, text[-2000:]
    assert "flow materialize stopped" in text
