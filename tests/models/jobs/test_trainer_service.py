"""The trainer service: job events, retries with backoff, timeouts, coalescing, and the
guarantee that a killed training job never leaves a half-published model."""

from __future__ import annotations

import logging
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from fti.connectors.kafka.clients import ensure_topics
from fti.events import RetrainRequest
from fti.infra.embedded_broker import EmbeddedBroker
from fti.models.jobs.launchers import JobSpec, LocalProcessLauncher, settings_env
from fti.models.jobs.model_job import run_model_job
from fti.models.jobs.trainer_service import JobEvent, TrainerService
from fti.models.registry import ModelRegistry, sha256_file
from fti.settings import Settings, TrainingSettings
from tests.champions import backfill_history
from tests.example_projects import example_project
from tests.support import make_settings, read_topic, wait_for

MODEL = "fraud-xgb"


def _argv(code: str, seen: list[JobSpec] | None = None) -> Callable[[JobSpec], Sequence[str]]:
    """A fake job command: `python -c code`, recording each attempt it is asked to run."""

    def argv(job: JobSpec) -> list[str]:
        if seen is not None:
            seen.append(job)
        return [sys.executable, "-c", code]

    return argv


def _request(reason: str = "drift", at: datetime | None = None) -> RetrainRequest:
    return RetrainRequest(model=MODEL, reason=reason, evidence={"reason": reason},
                          requested_at=at or datetime.now(UTC))


class _Service:
    """A TrainerService on a fake job command, with its own metrics and recorded sleeps."""

    def __init__(self, settings: Settings, code: str, timeout_s: float = 20.0,
                 max_attempts: int = 3, events: list[JobEvent] | None = None) -> None:
        registry = CollectorRegistry()
        self.runs = Counter("runs", "", ["model", "outcome"], registry=registry)
        durations = Histogram("seconds", "", ["model"], registry=registry)
        self.delays: list[float] = []
        self.jobs: list[JobSpec] = []
        self.topic = f"training.jobs-{uuid.uuid4().hex[:8]}"
        launcher = LocalProcessLauncher(settings, timeout_s=timeout_s, env=dict(os.environ),
                                        argv=_argv(code, self.jobs))
        self.service = TrainerService(
            settings, launcher, publish_job=events.append if events is not None else None,
            job_events_topic=self.topic, max_attempts=max_attempts, retry_backoff_s=5.0,
            sleep=self.delays.append, runs=self.runs, durations=durations, models={MODEL},
        )

    def count(self, outcome: str) -> float:
        return self.runs.labels(MODEL, outcome)._value.get()


def _states(events: list[JobEvent]) -> list[tuple[str, int]]:
    return [(e.state, e.attempt) for e in events]


def test_succeeded_job_publishes_queued_running_succeeded(settings: Settings) -> None:
    fake = _Service(settings, "print('training'); print('{\"promoted\": true}')")
    assert fake.service.handle(_request())
    records = read_topic(settings.kafka, fake.topic, settle_s=0.5)
    events = [JobEvent.model_validate_json(m.value()) for m in records]
    assert _states(events) == [("queued", 1), ("running", 1), ("succeeded", 1)]
    assert {e.job_id for e in events} == {fake.jobs[0].job_id}
    assert all(m.key() == MODEL.encode() for m in records)
    assert events[-1].detail == "promoted" and fake.count("promoted") == 1
    log_file = Path(events[-1].log or "")
    assert log_file.parent == settings.data_dir / "logs" / "jobs"
    assert "training" in log_file.read_text()


def test_failing_job_is_retried_with_backoff_then_fails(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[JobEvent] = []
    fake = _Service(settings, "import sys; print('boom'); sys.exit(3)", events=events)
    with caplog.at_level(logging.ERROR, logger="fti.models.jobs.trainer_service"):
        assert fake.service.handle(_request())
    assert _states(events) == [("queued", 1), ("running", 1), ("retrying", 1), ("running", 2),
                               ("retrying", 2), ("running", 3), ("failed", 3)]
    assert fake.delays == [5.0, 10.0]
    assert [j.attempt for j in fake.jobs] == [1, 2, 3]
    assert events[-1].detail == "exit code 3"
    assert fake.count("retrying") == 2 and fake.count("failed") == 1
    error = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(error) == 1 and str(events[-1].log) in error[0].getMessage()
    assert Path(events[-1].log or "").read_text().strip() == "boom"


def test_timeout_kills_the_job(settings: Settings) -> None:
    events: list[JobEvent] = []
    fake = _Service(settings, "import time; time.sleep(60)", timeout_s=1.0, max_attempts=1,
                    events=events)
    start = time.monotonic()
    assert fake.service.handle(_request())
    assert time.monotonic() - start < 15
    assert events[-1].state == "failed" and "timed out after 1 s" in events[-1].detail
    assert fake.count("failed") == 1 and fake.delays == []


def test_requests_during_a_running_job_merge_into_one_follow_up(
    settings: Settings, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    code = (f"import os, time\nend = time.monotonic() + 20\n"
            f"while not os.path.exists({str(gate)!r}) and time.monotonic() < end:\n"
            f"    time.sleep(0.05)")
    events: list[JobEvent] = []
    fake = _Service(settings, code, events=events)
    service = fake.service
    before = datetime.now(UTC) - timedelta(seconds=1)
    assert service.submit(_request("volume")) == "started"
    worker = threading.Thread(target=service.drain, args=(MODEL,), daemon=True)
    worker.start()
    wait_for(lambda: ("running", 1) in _states(events), timeout_s=15, what="job 1 running")
    assert service.submit(_request("volume", at=before)) == "covered"
    assert service.submit(_request("volume")) == "queued"
    assert service.submit(_request("drift")) == "merged"
    assert service.submit(_request("manual")) == "merged"
    assert not service.idle()
    gate.touch()
    worker.join(30)
    assert not worker.is_alive() and service.idle()
    assert len(fake.jobs) == 2 and fake.jobs[0].job_id != fake.jobs[1].job_id
    follow_up = fake.jobs[1]
    assert follow_up.reason == "drift" and follow_up.attempt == 1
    queued = [e for e in events if e.state == "queued"]
    assert [e.job_id for e in queued] == [j.job_id for j in fake.jobs]
    assert [e.state for e in events if e.job_id == follow_up.job_id] == [
        "queued", "running", "succeeded"]


def test_run_consumes_requests_and_stops(settings: Settings) -> None:
    from fti.connectors.kafka.clients import make_producer

    fake = _Service(settings, "pass")
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=fake.service.run, args=(stop, ready.set), daemon=True)
    thread.start()
    try:
        assert ready.wait(30)
        producer = make_producer(settings.kafka)
        for value in (b"not json", _request().to_json()):
            producer.produce(settings.topics.retrain_requests, key=MODEL.encode(), value=value)
        producer.flush(10)
        wait_for(lambda: fake.count("succeeded") == 1, timeout_s=40, what="the job to succeed")
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    events = [JobEvent.model_validate_json(m.value())
              for m in read_topic(settings.kafka, fake.topic, settle_s=0.5)]
    assert [e.state for e in events] == ["queued", "running", "succeeded"]


def _check_registry(registry: ModelRegistry) -> list[int]:
    """Every listed version has all its files with matching sha256; aliases resolve."""
    numbers = registry.version_numbers(MODEL)
    for version in registry.versions(MODEL):
        folder = registry.root / MODEL / str(version.version)
        assert version.files, f"version {version.version} lists no files"
        for name, digest in version.files.items():
            assert sha256_file(Path(folder) / name) == digest, (version.version, name)
    for alias, number in registry.aliases(MODEL).items():
        assert number in numbers, f"alias {alias} -> missing version {number}"
    return numbers


@pytest.mark.slow
def test_killed_training_job_never_leaves_a_half_published_model(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    training = TrainingSettings(device="cpu", window_labels=3000)
    settings = make_settings(broker.bootstrap_servers, tmp_path / "data", training=training)
    ensure_topics(settings.kafka, settings.topics)
    example = example_project("fraud", settings, tmp_path / "fraud")
    backfill_history(settings, example.project, tmp_path / "history")
    assert run_model_job(settings, example.project, MODEL).version == 1  # champion
    launcher = LocalProcessLauncher(settings, timeout_s=120, env=settings_env(settings))
    registry = ModelRegistry(settings.registry_dir)
    where = str(example.directory)

    # The subprocess takes ~5 s unloaded, 20 s+ on a busy machine: a kill anywhere in it.
    kill_at = random.uniform(0.5, 15.0)
    victim = launcher.launch(JobSpec("victim", MODEL, "drift", datetime.now(UTC), project=where))
    if victim.wait(kill_at) is None:
        victim.cancel()
        assert victim.poll() == "failed" and victim.process.returncode == -9
    numbers = _check_registry(registry)
    assert numbers in ([1], [1, 2]), f"killed at {kill_at:.2f} s: {numbers}"

    events: list[JobEvent] = []
    service = TrainerService(settings, launcher, publish_job=events.append, sleep=lambda _: None,
                             project=example.project)
    retry = JobSpec("retry", MODEL, "drift", datetime.now(UTC), project=where)
    assert service.run_job(retry), launcher.log_path(retry).read_text()
    after = _check_registry(registry)
    assert after == [*numbers, numbers[-1] + 1]
    assert events[-1].state == "succeeded"
    assert events[-1].detail in ("promoted", "rejected")


def test_poison_requests_from_a_foreign_client_are_skipped_and_counted(
    settings: Settings,
) -> None:
    from kafka import KafkaProducer

    from fti import metrics
    from tests.poison import POISON

    topic = settings.topics.retrain_requests
    skipped = metrics.RECORDS_SKIPPED.labels("trainer", topic)
    before = skipped._value.get()
    fake = _Service(settings, "pass")
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=fake.service.run, args=(stop, ready.set), daemon=True)
    thread.start()
    try:
        assert ready.wait(30)
        producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers,
                                 max_request_size=4 << 20)
        for value in (*POISON.values(), _request().to_json()):
            producer.send(topic, key=MODEL.encode(), value=value)
        producer.flush(30)
        producer.close()
        wait_for(lambda: fake.count("succeeded") == 1, timeout_s=40, what="the valid request")
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(30)
    assert skipped._value.get() - before == len(POISON)
