"""kill -9 the inference service of the fraud example (`fti flow inference --project`) under a
steady producer: after the restart every event is predicted, and the only repeats are the
events scored since the last recovery snapshot."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from fti.connectors.kafka.reader import TopicsReader
from fti.settings import Settings
from tests.champions import backfill_history, train
from tests.example_projects import example_project
from tests.flows.test_service import service_env
from tests.support import read_topic, wait_for

COUNT, BAD, SEED = 16000, 0.02, 8
RATE = 500.0  # events per second: the kill lands mid-stream
SNAPSHOT_S = 0.5


def _start(env: dict[str, str], log: Path, project: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "fti", "flow", "inference", "--project", str(project)], env=env,
        stdout=open(log, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115


class Tail:
    """Predictions read so far, incrementally (a whole-topic read waits for quiet, which a
    steady stream never gives)."""

    def __init__(self, settings: Settings, topic: str | None = None) -> None:
        self.reader = TopicsReader(settings.kafka, [topic or settings.topics.predictions])
        self.count = 0
        self.values: list[dict] = []

    def __call__(self) -> int:
        for _ in range(20):
            batch = self.reader.read_batch(10_000, 0.05)
            self.count += len(batch)
            self.values.extend(json.loads(r.value) for r in batch)
            if not batch:
                break
        return self.count


def _predictions(settings: Settings) -> list[dict]:
    return [json.loads(m.value()) for m in
            read_topic(settings.kafka, settings.topics.predictions, settle_s=0.5)]


@pytest.mark.slow
def test_kill_9_resumes_from_the_snapshot_not_the_start(settings: Settings, tmp_path: Path) -> None:
    example = example_project("fraud", settings, tmp_path / "fraud")
    backfill_history(settings, example.project, tmp_path / "history")
    champion = train(settings, example.project, "fraud-xgb").version
    env = service_env(settings, FTI_RECOVERY__DIR=str(tmp_path / "recovery"),
                      FTI_RECOVERY__SNAPSHOT_S=str(SNAPSHOT_S), FTI_METRICS__INFERENCE_PORT="0")
    log = tmp_path / "inference.log"
    producer = example.producer(settings, COUNT, bad_fraction=BAD, seed=SEED)
    sending = threading.Thread(target=producer.send, args=(COUNT, RATE))
    process = _start(env, log, example.directory)
    wait_for(lambda: log.exists() and "flow inference running" in log.read_text(),
             what="the flow to run")
    sending.start()
    tail = Tail(settings)
    wait_for(lambda: tail() >= 3000, timeout_s=90, what="3000 predictions")
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    scored_before_kill = tail()
    tail.reader.close()

    running_before = log.read_text().count("flow inference running")
    process = _start(env, log, example.directory)
    try:
        wait_for(lambda: log.read_text().count("flow inference running") > running_before,
                 what="the restarted flow to run")
        sending.join()
        valid = producer.counts.events - producer.counts.bad_events
        wait_for(lambda: len({p["id"] for p in _predictions(settings)}) >= valid,
                 timeout_s=120, what="a prediction for every event")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()[-6000:]

    out = _predictions(settings)
    per_event = Counter((p["id"], p["version"]) for p in out)
    repeated = [key for key, n in per_event.items() if n > 1]
    assert producer.counts.bad_events > 0
    assert len({p["id"] for p in out}) == valid  # nothing lost, no invalid event scored
    assert {p["model"] for p in out} == {"fraud-xgb"} and {p["version"] for p in out} == {
        champion}
    assert all(n <= 2 for n in per_event.values())  # a repeat at most once, same id + version
    # Without recovery a restart re-scores the whole topic (>= 3000 here); with it, only what
    # was scored after the last snapshot: about RATE x SNAPSHOT_S, plus a batch in flight.
    assert 3000 <= scored_before_kill < valid * 0.8, scored_before_kill  # killed mid-stream
    assert len(repeated) <= RATE * SNAPSHOT_S + 1000, (len(repeated), scored_before_kill)
    assert any((tmp_path / "recovery" / "inference").iterdir())
    print(f"scored before the kill: {scored_before_kill}; repeated after it: {len(repeated)}")
