"""Test helpers: settings per test, running a flow in a thread, waiting, reading topics,
a Redis to talk to."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis
from bytewax.dataflow import Dataflow
from bytewax.testing import run_main
from confluent_kafka import OFFSET_BEGINNING, Message, TopicPartition

from fti.connectors.kafka.clients import make_consumer, partitions_of
from fti.infra.embedded_broker import free_port
from fti.settings import KafkaSettings, MetricsSettings, Settings, TopicSettings


def make_settings(bootstrap: str, data_dir: Path, **overrides: object) -> Settings:
    """Settings for one test: its own data dir, uuid-suffixed topics, metrics off."""
    suffix = uuid.uuid4().hex[:10]
    defaults = TopicSettings()
    topics = TopicSettings(
        **{name: f"{getattr(defaults, name)}-{suffix}" for name in
           ("retrain_requests", "registry_events", "predictions", "shadow_predictions",
            "training_jobs")}
    )
    metrics = MetricsSettings(features_port=0, monitor_port=0, inference_port=0, trainer_port=0)
    return Settings(
        data_dir=data_dir, kafka=KafkaSettings(bootstrap_servers=bootstrap), topics=topics,
        metrics=metrics, **overrides,
    )


@contextmanager
def running_flow(
    build: Callable[[threading.Event], Dataflow], stop: threading.Event | None = None
) -> Iterator[threading.Event]:
    """Run a dataflow in a thread; on exit, stop it and require a clean, prompt end."""
    stop = stop or threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run_main(build(stop))
        except BaseException as ex:  # reported to the test below
            errors.append(ex)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive(), "the flow did not stop within 30 s of being asked"
    assert not errors, f"the flow failed: {errors[0]!r}"


def wait_for(condition: Callable[[], bool], timeout_s: float = 60.0, what: str = "") -> None:
    """Poll `condition` until true; fail the test with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what or condition}")


def read_topic(
    kafka: KafkaSettings, topic: str, settle_s: float = 1.0, first_record_s: float = 5.0
) -> list[Message]:
    """All records of `topic`: reads until no record arrived for `settle_s` (Tansu's high
    watermark lags, so it is not used as the end). Before the first record it waits up to
    `first_record_s`, since a new consumer's first fetch can be slow on a loaded machine."""
    consumer = make_consumer(kafka)
    consumer.assign(
        [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions_of(kafka, topic)]
    )
    records: list[Message] = []
    quiet_since = time.monotonic()
    deadline = quiet_since + 60

    def patience() -> float:
        return settle_s if records else max(settle_s, first_record_s)

    while time.monotonic() - quiet_since < patience() and time.monotonic() < deadline:
        batch = [m for m in consumer.consume(1000, 0.1) if m.error() is None]
        if batch:
            records.extend(batch)
            quiet_since = time.monotonic()
    consumer.close()
    return records


def redis_answers(url: str, timeout_s: float = 1.0) -> bool:
    """True if a Redis at `url` answers PING within `timeout_s`."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


@contextmanager
def redis_server(url: str, start_timeout_s: float = 30.0) -> Iterator[str]:
    """`url` if a Redis answers PING there. Otherwise a private `redis-server` on a free port
    of 127.0.0.1, without persistence, stopped (and waited for) on exit: its URL keeps the
    database number of `url` (credentials and TLS dropped: the private server has neither)."""
    if redis_answers(url):
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            f"no Redis answers at {url} and redis-server is not on PATH: "
            "run `bash infra/install-redis.sh` (make test does) or start a Redis there"
        )
    with tempfile.TemporaryDirectory(prefix="fti-redis-") as work:
        process, private = _start_redis(binary, url, Path(work), start_timeout_s)
        try:
            yield private
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def _start_redis(
    binary: str, url: str, work: Path, timeout_s: float, attempts: int = 3
) -> tuple[subprocess.Popen[bytes], str]:
    """A running redis-server answering PING, and its URL; a new free port when the chosen
    one was taken in the meantime."""
    for attempt in range(1, attempts + 1):
        port = free_port()
        private = urlunsplit(urlsplit(url)._replace(scheme="redis", netloc=f"127.0.0.1:{port}"))
        log_path = work / f"redis-{port}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(work)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while process.poll() is None and time.monotonic() < deadline:
            if redis_answers(private, timeout_s=0.5):
                return process, private
            time.sleep(0.05)
        timed_out = process.poll() is None
        if timed_out:
            process.kill()
        process.wait(10)
        output = log_path.read_text(errors="replace")
        if "in use" not in output or attempt == attempts:
            why = (f"did not answer PING within {timeout_s}s" if timed_out
                   else f"exited with {process.returncode}")
            raise RuntimeError(f"private redis-server on port {port} {why}:\n{output[-2000:]}")
    raise AssertionError("unreachable")
