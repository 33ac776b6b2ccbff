"""The trainer service: consumes `retrain.requests` and runs training jobs through a launcher.

Per model, at most one job runs and at most one follow-up waits. A request made before the
running (or last) job started is covered by it and dropped; later ones are merged into the
follow-up (newest time, strongest reason, all evidence). A failed attempt (non-zero exit,
timeout) is retried with exponential backoff up to `max_attempts`. Every state change is a
`JobEvent` on the job events topic and a count in ``fti_training_runs_total``.

>>> from datetime import UTC, datetime
>>> t = datetime(2026, 1, 1, tzinfo=UTC)
>>> a = RetrainRequest(model="m", reason="volume", evidence={"labels": 900}, requested_at=t)
>>> b = RetrainRequest(model="m", reason="drift", evidence={"detector": "adwin"},
...                    requested_at=t.replace(hour=1))
>>> merged = merge_requests(a, b)
>>> merged.reason, merged.requested_at.hour, merged.evidence["merged_reasons"]
('drift', 1, ['drift', 'volume'])
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from fti import metrics
from fti.connectors.errors import ConnectorError
from fti.connectors.kafka.clients import ensure_topic_names
from fti.connectors.kafka.publisher import Publisher
from fti.connectors.kafka.reader import GroupReader, KafkaRecord
from fti.errors import EventError, FtiError
from fti.events import EventTime, RegistryEvent, RetrainRequest, decode_event
from fti.models.jobs.k8s_launcher import KubernetesJobConfig, KubernetesJobLauncher
from fti.models.jobs.launchers import JobHandle, JobSpec, JobState, Launcher, LocalProcessLauncher
from fti.settings import Settings

if TYPE_CHECKING:
    from prometheus_client.metrics import MetricWrapperBase

    from fti.features.project.loader import Project

log = logging.getLogger(__name__)
#: Which reason a merged follow-up carries: the most telling one first.
REASON_PRIORITY = ("drift", "manual", "volume")
Decision = Literal["started", "queued", "merged", "covered", "ignored"]


class JobEvent(BaseModel):
    """One state change of a training job on the job events topic, keyed by model name."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    model: str
    reason: str
    state: JobState
    attempt: int
    at: EventTime
    detail: str = ""
    log: str | None = None

    def to_json(self) -> bytes:
        """Compact JSON bytes, times as RFC 3339 in UTC."""
        return self.model_dump_json().encode()


def merge_requests(older: RetrainRequest | None, newer: RetrainRequest) -> RetrainRequest:
    """One request standing for both: newest time, most telling reason, merged evidence."""
    if older is None:
        return newer
    reasons = sorted({older.reason, newer.reason} | set(older.evidence.get("merged_reasons", [])))
    reason = next(r for r in REASON_PRIORITY if r in reasons)
    count = int(older.evidence.get("merged_count", 1)) + 1
    evidence = {**older.evidence, **newer.evidence, "merged_reasons": reasons,
                "merged_count": count}
    return RetrainRequest(model=newer.model, reason=reason, evidence=evidence,
                          requested_at=max(older.requested_at, newer.requested_at))


class RegistryEventPublisher:
    """Publishes registry events to Kafka, keyed by model name, and waits for delivery;
    raises `DeliveryError` when the broker did not acknowledge the event."""

    def __init__(self, settings: Settings, timeout_s: float = 10.0) -> None:
        self.topic, self.timeout_s = settings.topics.registry_events, timeout_s
        self._publisher = Publisher(settings.kafka)

    def __call__(self, event: RegistryEvent) -> None:
        self._publisher.send(self.topic, event.to_json(), event.model.encode())
        self._publisher.flush(self.timeout_s)


class JobEventPublisher:
    """Publishes `JobEvent`s to `topic` (created if missing), keyed by model name."""

    def __init__(self, settings: Settings, topic: str | None = None) -> None:
        self.topic = topic = topic or settings.topics.training_jobs
        self._publisher = Publisher(settings.kafka)
        ensure_topic_names(settings.kafka, [topic])

    def __call__(self, event: JobEvent) -> None:
        self._publisher.send(self.topic, event.to_json(), event.model.encode())
        self._publisher.flush(10)


@dataclass
class _Lane:
    """One model's jobs: whether one runs, the follow-up waiting, when the last one started."""

    busy: bool = False
    waiting: tuple[str, RetrainRequest] | None = None
    last_started: datetime | None = None


def default_launcher(settings: Settings) -> Launcher:
    """The launcher `training.launcher` names ("local" unless set to "kubernetes")."""
    t = settings.training
    if t.launcher == "kubernetes":
        return KubernetesJobLauncher(KubernetesJobConfig(
            image=t.k8s_image, namespace=t.k8s_namespace, gpu=t.k8s_gpu, tpu=t.k8s_tpu,
            active_deadline_s=t.job_timeout_s,
        ))
    return LocalProcessLauncher(settings, timeout_s=t.job_timeout_s)


class TrainerService:
    """Runs training jobs for the retrain requests it reads, one at a time per model.

    Defaults come from ``settings.training`` (`max_attempts`, `retry_backoff_s`,
    `job_timeout_s`, `launcher` when present); keyword arguments override them for tests.
    `sleep` waits between attempts (default: until the delay passes or the service stops).
    """

    def __init__(
        self,
        settings: Settings,
        launcher: Launcher | None = None,
        *,
        publish_job: Callable[[JobEvent], None] | None = None,
        job_events_topic: str | None = None,
        max_attempts: int | None = None,
        retry_backoff_s: float | None = None,
        sleep: Callable[[float], None] | None = None,
        runs: MetricWrapperBase = metrics.TRAINING_RUNS,
        durations: MetricWrapperBase = metrics.TRAINING_SECONDS,
        project: Project | None = None,
        models: Collection[str] = (),
    ) -> None:
        t = settings.training
        self.settings = settings
        #: The models it trains: the project's, and any named in `models`.
        self.models = set(models) | (set(project.models) if project is not None else set())
        self.project = str(project.directory.resolve()) if project is not None else None
        self.launcher = launcher or default_launcher(settings)
        self.publish_job = publish_job or JobEventPublisher(
            settings, job_events_topic or settings.topics.training_jobs
        )
        self.max_attempts = max_attempts or t.max_attempts
        backoff = t.retry_backoff_s
        self.retry_backoff_s = backoff if retry_backoff_s is None else retry_backoff_s
        self._stopping = threading.Event()
        self._sleep = sleep or (lambda delay: self._stopping.wait(delay))
        self._runs, self._durations = runs, durations
        self._lock = threading.Lock()
        self._lanes: dict[str, _Lane] = {}
        self._workers: list[threading.Thread] = []

    def submit(self, request: RetrainRequest) -> Decision:
        """Accept `request`: "started" (caller must `drain`), "queued"/"merged" as the
        follow-up, "covered" by a job started after it, "ignored" (unknown model)."""
        if request.model not in self.models:
            log.warning("no model %r here (known: %s); request ignored", request.model,
                        ", ".join(sorted(self.models)))
            return "ignored"
        with self._lock:
            lane = self._lanes.setdefault(request.model, _Lane())
            if lane.last_started is not None and request.requested_at <= lane.last_started:
                log.info("%s request (%s) covered by the job started at %s", request.model,
                         request.reason, lane.last_started.isoformat())
                return "covered"
            if lane.waiting is not None:
                job_id, waiting = lane.waiting
                lane.waiting = (job_id, merge_requests(waiting, request))
                log.info("%s request (%s) merged into follow-up %s", request.model,
                         request.reason, job_id)
                return "merged"
            job_id = f"{request.model}-{uuid.uuid4().hex[:8]}"
            lane.waiting = (job_id, request)
            decision: Decision = "queued" if lane.busy else "started"
            lane.busy = True
        self._emit(JobSpec(job_id, request.model, request.reason, request.requested_at,
                           project=self.project),
                   "queued", "follow-up of the running job" if decision == "queued" else "")
        return decision

    def drain(self, model: str) -> None:
        """Run `model`'s waiting job and every follow-up queued meanwhile, then go idle."""
        while True:
            with self._lock:
                lane = self._lanes[model]
                if lane.waiting is None or self._stopping.is_set():
                    lane.busy = False
                    return
                job_id, request = lane.waiting
                lane.waiting = None
                lane.last_started = datetime.now(UTC)
            self.run_job(JobSpec(job_id, model, request.reason, request.requested_at,
                                 project=self.project))

    def handle(self, request: RetrainRequest) -> bool:
        """Run the job for `request` now unless a job covers it or runs; True if one ran."""
        if self.submit(request) != "started":
            return False
        self.drain(request.model)
        return True

    def idle(self) -> bool:
        """True when no job runs or waits."""
        with self._lock:
            return not any(lane.busy for lane in self._lanes.values())

    def run_job(self, job: JobSpec) -> bool:
        """Run `job` with retries and backoff; True if an attempt succeeded."""
        start = time.perf_counter()
        for attempt in range(1, self.max_attempts + 1):
            spec = job.with_attempt(attempt)
            state, handle = self._attempt(spec)
            detail = handle.detail if handle is not None else state
            where = handle.log_location if handle is not None else None
            if state == "succeeded":
                promoted = (handle.result or {}).get("promoted") if handle else None
                outcome = "succeeded" if promoted is None else (
                    "promoted" if promoted else "rejected")
                self._runs.labels(job.model, outcome).inc()
                self._durations.labels(job.model).observe(time.perf_counter() - start)
                self._emit(spec, "succeeded", outcome, where)
                return True
            if attempt < self.max_attempts and not self._stopping.is_set():
                delay = self.retry_backoff_s * 2 ** (attempt - 1)
                self._runs.labels(job.model, "retrying").inc()
                self._emit(spec, "retrying", f"{detail}; attempt {attempt + 1} of "
                           f"{self.max_attempts} in {delay:g} s", where)
                self._sleep(delay)
                continue
            self._runs.labels(job.model, "failed").inc()
            self._emit(spec, "failed", detail, where)
            log.error("training job %s (%s, %s) failed after %d attempt(s): %s; log: %s",
                      job.job_id, job.model, job.reason, attempt, detail, where)
            return False
        return False

    def _attempt(self, spec: JobSpec) -> tuple[str, JobHandle | None]:
        """Launch one attempt and wait for it, cancelling it if the service stops."""
        try:
            handle = self.launcher.launch(spec)
        except (FtiError, OSError) as ex:
            log.warning("could not launch %s attempt %d: %s", spec.job_id, spec.attempt, ex)
            return f"launch failed: {ex}", None
        self._emit(spec, "running", "", handle.log_location)
        while (state := handle.wait(1.0)) is None:
            if self._stopping.is_set():
                handle.cancel()
        return state, handle

    def _emit(self, job: JobSpec, state: JobState, detail: str = "",
              where: str | None = None) -> None:
        event = JobEvent(job_id=job.job_id, model=job.model, reason=job.reason, state=state,
                         attempt=job.attempt, at=datetime.now(UTC), detail=detail, log=where)
        log.info("job %s %s (attempt %d) %s", job.job_id, state, job.attempt, detail)
        metrics.TRAINING_JOB_EVENTS.labels(job.model, state).inc()
        try:
            self.publish_job(event)
        except ConnectorError as ex:
            log.warning("could not publish job event %s/%s: %s", job.job_id, state, ex)

    def run(self, stop: threading.Event, on_ready: Callable[[], None] | None = None) -> None:
        """Consume requests until `stop` is set; jobs run on worker threads.

        Offsets are committed only while idle, so requests whose jobs had not finished are
        read again after a crash. On stop, running jobs are cancelled. `on_ready` is called
        once the consumer has subscribed."""
        self._stopping = stop
        prewarm = getattr(self.launcher, "prewarm", None)
        if prewarm is not None:  # the first job starts without a Python start-up
            prewarm()
        consumer = GroupReader(self.settings.kafka, "fti-trainer",
                               [self.settings.topics.retrain_requests])
        if on_ready is not None:
            on_ready()
        uncommitted, commit_after = False, 0.0
        try:
            while not stop.is_set():
                record = consumer.poll(0.2)
                if record is not None:
                    self._handle_record(record)
                    uncommitted = True
                if uncommitted and self.idle() and time.monotonic() >= commit_after:
                    uncommitted = not consumer.commit()
                    commit_after = time.monotonic() + (5.0 if uncommitted else 0.0)
        finally:
            stop.set()
            for worker in self._workers:
                worker.join(30)
            consumer.close()
            close = getattr(self.launcher, "close", None)
            if close is not None:
                close()

    def _handle_record(self, record: KafkaRecord) -> None:
        try:
            request = decode_event(RetrainRequest, record.value or b"")
        except EventError as ex:
            metrics.RECORDS_SKIPPED.labels("trainer", record.topic).inc()
            log.warning("malformed retrain request at %s: %s", record.source, ex)
            return
        if self.submit(request) == "started":
            worker = threading.Thread(target=self.drain, args=(request.model,),
                                      name=f"job-{request.model}", daemon=True)
            self._workers = [w for w in self._workers if w.is_alive()] + [worker]
            worker.start()

