"""Keep service processes running: start, watch, restart with backoff, stop gracefully.

A crashed service is restarted after a delay that doubles with each consecutive crash (1 s,
2 s, 4 s … capped at 30 s); a service that then stays up for 60 s starts again from 1 s. A
service that crashes `crash_limit` times within `crash_window_s` is reported at ERROR and
still retried. Stopping sends SIGTERM, waits, then SIGKILLs what is left; nothing is
restarted once a stop has begun.

Each service runs in its own process group (so a Ctrl-C in the terminal reaches only the
supervisor, which then stops the services in order) and logs to `<log_dir>/<name>.log`.

>>> policy = Backoff()
>>> [policy.delay(n) for n in range(1, 8)]
[1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceSpec:
    """One supervised service: its name, its command line and its health/metrics port.

    >>> ServiceSpec("features", ("python", "-m", "fti", "flow", "features"), 9101).name
    'features'
    """

    name: str
    argv: Sequence[str]
    health_port: int = 0


@dataclass(frozen=True)
class Backoff:
    """When to restart a crashed service: exponential delays, reset after a long enough run.

    >>> Backoff(initial_s=0.5, factor=3, max_s=10).delay(3)
    4.5
    """

    initial_s: float = 1.0
    factor: float = 2.0
    max_s: float = 30.0
    reset_after_s: float = 60.0
    crash_limit: int = 5
    crash_window_s: float = 300.0

    def delay(self, failures: int) -> float:
        """Seconds to wait before the restart that follows `failures` consecutive crashes.

        >>> Backoff().delay(1), Backoff().delay(20)
        (1.0, 30.0)
        """
        if failures < 1:
            raise ValueError(f"failures must be >= 1, got {failures}")
        return float(min(self.initial_s * self.factor ** (failures - 1), self.max_s))

    def failures_after_crash(self, failures: int, uptime_s: float) -> int:
        """Consecutive crashes counted after a crash that ended a run of `uptime_s` seconds.

        >>> Backoff().failures_after_crash(4, uptime_s=5.0)
        5
        >>> Backoff().failures_after_crash(4, uptime_s=61.0)
        1
        """
        return 1 if uptime_s >= self.reset_after_s else failures + 1


def crashes_in_window(crash_times: Sequence[float], now: float, window_s: float) -> int:
    """How many of `crash_times` (monotonic seconds) fall within the last `window_s`.

    >>> crashes_in_window([1.0, 50.0, 95.0], now=100.0, window_s=60.0)
    2
    """
    return sum(1 for t in crash_times if now - t <= window_s)


@dataclass(frozen=True)
class ServiceStatus:
    """A snapshot of one supervised service, as `Supervisor.status` reports it."""

    name: str
    pid: int | None
    running: bool
    restarts: int
    last_exit_code: int | None
    restart_delays: tuple[float, ...]


@dataclass
class _Service:
    spec: ServiceSpec
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    failures: int = 0
    last_exit_code: int | None = None
    next_start_at: float | None = 0.0
    crash_times: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    delays: list[float] = field(default_factory=list)


class Supervisor:
    """Run `specs` as subprocesses with `env`, restart them when they crash, stop them on request.

    `start()` launches every service and a watcher thread that polls every `poll_s`;
    `stop()` ends them all and returns their exit codes. `clock` is injectable for tests.
    """

    def __init__(
        self,
        specs: Sequence[ServiceSpec],
        env: Mapping[str, str],
        log_dir: Path,
        backoff: Backoff | None = None,
        poll_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"service names must be unique, got {names}")
        self.env = dict(env)
        self.log_dir = Path(log_dir)
        self.backoff = backoff or Backoff()
        self.poll_s = poll_s
        self.clock = clock
        self._services = {spec.name: _Service(spec) for spec in specs}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def log_file(self, name: str) -> Path:
        """Where service `name` writes its stdout and stderr (appended across restarts)."""
        return self.log_dir / f"{name}.log"

    def start(self) -> Supervisor:
        """Start every service and the watcher thread; return self."""
        if self._watcher is not None:
            raise RuntimeError("the supervisor was already started")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            for service in self._services.values():
                self._launch(service)
        self._watcher = threading.Thread(target=self._watch, name="fti-supervisor", daemon=True)
        self._watcher.start()
        return self

    def status(self) -> dict[str, ServiceStatus]:
        """A snapshot of every service: pid, running, restarts, last exit code, delays used."""
        with self._lock:
            return {
                name: ServiceStatus(
                    name=name,
                    pid=s.process.pid if s.process else None,
                    running=s.process is not None and s.process.poll() is None,
                    restarts=s.restarts,
                    last_exit_code=s.last_exit_code,
                    restart_delays=tuple(s.delays),
                )
                for name, s in self._services.items()
            }

    def stop(self, timeout_s: float = 30.0) -> dict[str, int | None]:
        """SIGTERM every service, wait up to `timeout_s`, SIGKILL the rest; return exit codes.

        A service waiting for its restart reports its last exit code; one never started, None.
        """
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(max(self.poll_s * 4, 5.0))
        with self._lock:
            # Those that exited since the last poll are reaped too, for their exit codes.
            started = [s for s in self._services.values() if s.process is not None]
        for service in started:
            process = service.process
            if process is not None and process.poll() is None:
                log.info("stopping %s (pid %d)", service.spec.name, process.pid,
                         extra={"service": service.spec.name, "event": "stopping"})
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for service in started:
            self._reap(service, deadline)
        with self._lock:
            return {name: s.last_exit_code for name, s in self._services.items()}

    def _reap(self, service: _Service, deadline: float) -> None:
        process, name = service.process, service.spec.name
        assert process is not None
        try:
            process.wait(max(deadline - time.monotonic(), 0.01))
            if _kill_group(process.pid):
                log.warning("%s left processes behind; killed them", name,
                            extra={"service": name, "event": "orphans_killed"})
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time; killing it", name,
                        extra={"service": name, "event": "killed"})
            _kill_group(process.pid)
            process.wait(10)
        with self._lock:
            service.last_exit_code = process.returncode

    def _watch(self) -> None:
        while not self._stopping.wait(self.poll_s):
            with self._lock:
                if self._stopping.is_set():
                    return
                now = self.clock()
                for service in self._services.values():
                    self._check(service, now)

    def _check(self, service: _Service, now: float) -> None:
        process = service.process
        if process is not None and process.poll() is not None:
            self._on_exit(service, process.returncode, now)
        elif process is None and service.next_start_at is not None and now >= service.next_start_at:
            service.restarts += 1
            self._launch(service)

    def _on_exit(self, service: _Service, code: int, now: float) -> None:
        name, uptime = service.spec.name, now - service.started_at
        _kill_group(service.process.pid if service.process else 0)
        service.process, service.last_exit_code = None, code
        service.failures = self.backoff.failures_after_crash(service.failures, uptime)
        delay = self.backoff.delay(service.failures)
        service.delays.append(delay)
        service.crash_times.append(now)
        service.next_start_at = now + delay
        extra = {"service": name, "event": "crashed", "exit_code": code}
        log.warning("%s exited with code %s after %.1fs; restarting in %.1fs (see %s)", name,
                    code, uptime, delay, self.log_file(name), extra=extra)
        crashes = crashes_in_window(service.crash_times, now, self.backoff.crash_window_s)
        if crashes >= self.backoff.crash_limit:
            log.error("%s crashed %d times in the last %.0fs; still retrying with backoff "
                      "(see %s)", name, crashes, self.backoff.crash_window_s,
                      self.log_file(name), extra={**extra, "event": "crash_loop"})

    def _launch(self, service: _Service) -> None:
        spec = service.spec
        with open(self.log_file(spec.name), "ab") as out:
            # The child gets its own copy of the file descriptor; ours closes here.
            service.process = subprocess.Popen(
                list(spec.argv), env=self.env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        service.started_at, service.next_start_at = self.clock(), None
        log.info("started %s (pid %d%s)", spec.name, service.process.pid,
                 f", restart {service.restarts}" if service.restarts else "",
                 extra={"service": spec.name, "event": "started", "restarts": service.restarts})


def _kill_group(pgid: int) -> bool:
    """SIGKILL what is left of process group `pgid`; True if anything was there."""
    if pgid <= 0:
        return False
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True
