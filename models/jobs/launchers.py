"""Where a training job runs: the `Launcher` contract and the local-subprocess launcher.

A launcher turns a `JobSpec` into a running job and hands back a `JobHandle` to poll, wait
for or cancel. The trainer service owns retries and coalescing; launchers only run one
attempt. `LocalProcessLauncher` (the embedded default) runs ``python -m fti train`` as a
subprocess; `fti.models.jobs.k8s_launcher.KubernetesJobLauncher` submits a ``batch/v1`` Job.

>>> from datetime import UTC
>>> spec = JobSpec("risk-xgb-1", "risk-xgb", "drift", datetime(2026, 1, 1, tzinfo=UTC))
>>> spec.attempt, spec.with_attempt(2).attempt
(1, 2)
>>> train_argv(spec)[-6:-2]
['--model', 'risk-xgb', '--reason', 'drift']
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, SecretStr

from fti.models.jobs.warm import JOB_KEYS
from fti.settings import Settings

#: Every state a job goes through; "succeeded" and "failed" are final.
JobState = Literal["queued", "running", "succeeded", "failed", "retrying"]
FINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed"})


@dataclass(frozen=True)
class JobSpec:
    """One attempt of one training job: which model, why, when it was asked for."""

    job_id: str
    model: str
    reason: str
    requested_at: datetime
    attempt: int = 1
    #: The user project declaring the model (its directory); None: a built-in model.
    project: str | None = None

    def with_attempt(self, attempt: int) -> JobSpec:
        """The same job, as attempt number `attempt`."""
        return replace(self, attempt=attempt)


class JobHandle(Protocol):
    """A launched job attempt. `poll`/`wait` return a final state, or None while it runs."""

    job: JobSpec
    #: Why the job ended the way it did (exit code, timeout, cancellation); "" while running.
    detail: str
    #: Where its output goes: a log file path or a `kubectl logs` hint.
    log_location: str
    #: The training result (the JSON line `fti train` prints) once succeeded, if known.
    result: dict[str, Any] | None

    def poll(self) -> JobState | None:
        """The final state if the job has ended, else None."""
        ...

    def wait(self, timeout_s: float | None) -> JobState | None:
        """Wait up to `timeout_s` (None: until it ends); the final state, or None if running."""
        ...

    def cancel(self) -> None:
        """Stop the job; it then ends as "failed"."""
        ...


class Launcher(Protocol):
    """Runs one attempt of a training job somewhere."""

    def launch(self, job: JobSpec) -> JobHandle:
        """Start `job` and return its handle without waiting for it."""
        ...


def warm_train_argv() -> list[str]:
    """The command of a training process that waits for its job on stdin (`jobs.warm`)."""
    return [sys.executable, "-m", "fti", "train", "--job-from-stdin"]


def train_argv(job: JobSpec) -> list[str]:
    """The command that trains `job` in a fresh Python (the ``fti train`` CLI)."""
    project = ["--project", job.project] if job.project else []
    return [sys.executable, "-m", "fti", "train", "--model", job.model, "--reason", job.reason,
            "--job-id", job.job_id, *project]


def settings_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment whose ``FTI_*`` variables rebuild `settings` in a child process.

    `base` (default: this process's environment) provides everything else; its ``FTI_*``
    variables are replaced, except ``FTI_CONFIG``. Secrets are passed as their values, as the
    service itself received them.

    >>> env = settings_env(Settings(data_dir="/tmp/x"), base={"PATH": "/bin", "FTI_X": "1"})
    >>> env["FTI_DATA_DIR"], env["PATH"], "FTI_X" in env
    ('/tmp/x', '/bin', False)
    """
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.upper().startswith("FTI_")}
    if "FTI_CONFIG" in source:
        env["FTI_CONFIG"] = source["FTI_CONFIG"]
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, BaseModel):
            for field in type(value).model_fields:
                _put(env, f"FTI_{name.upper()}__{field.upper()}", getattr(value, field))
        else:
            _put(env, f"FTI_{name.upper()}", value)
    return env


def _put(env: dict[str, str], key: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str | Path):
        env[key] = str(value)
    else:
        env[key] = json.dumps(_plain(value))


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class LocalProcessHandle:
    """A job attempt running as a local subprocess, killed after its timeout."""

    def __init__(
        self, job: JobSpec, process: subprocess.Popen[bytes], log_path: Path,
        timeout_s: float | None, clock: Callable[[], float] = time.monotonic,
        on_end: Callable[[], None] | None = None, warm: bool = False,
    ) -> None:
        self.job, self.process, self.log_path = job, process, log_path
        #: Whether the job went to a process that had loaded the training code beforehand.
        self.warm = warm
        self._on_end = on_end
        self.log_location = str(log_path)
        self.detail = ""
        self.result: dict[str, Any] | None = None
        self._clock = clock
        self._deadline = None if timeout_s is None else clock() + timeout_s
        self._timeout_s = timeout_s
        self._state: JobState | None = None

    def poll(self) -> JobState | None:
        """The final state if the process has ended (or was killed for its timeout)."""
        if self._state is not None:
            return self._state
        code = self.process.poll()
        if code is None and self._deadline is not None and self._clock() >= self._deadline:
            self._kill()
            self.process.wait(10)
            return self._end("failed", f"timed out after {self._timeout_s:g} s; killed")
        if code is None:
            return None
        if code == 0:
            self.result = _last_json_line(self.log_path)
            return self._end("succeeded", "exit code 0")
        return self._end("failed", _exit_detail(code))

    def wait(self, timeout_s: float | None) -> JobState | None:
        """Poll every 50 ms until the job ends or `timeout_s` passes."""
        until = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            state = self.poll()
            if state is not None or (until is not None and time.monotonic() >= until):
                return state
            time.sleep(0.05)

    def cancel(self) -> None:
        """Kill the process group; the job ends as "failed" (cancelled)."""
        if self._state is None and self.process.poll() is None:
            self._kill()
            self.process.wait(10)
            self._end("failed", "cancelled")

    def _kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _end(self, state: JobState, detail: str) -> JobState:
        self._state, self.detail = state, detail
        if self._on_end is not None:
            self._on_end()
        return state


def _exit_detail(code: int) -> str:
    if code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def _last_json_line(path: Path) -> dict[str, Any] | None:
    try:
        lines = path.read_bytes().decode("utf-8", "replace").strip().splitlines()
        parsed = json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None
    return parsed if isinstance(parsed, dict) else None


class LocalProcessLauncher:
    """Runs each attempt as ``python -m fti train …`` in a subprocess of this service.

    The child gets this service's environment with its settings (`settings_env`), writes
    stdout and stderr to ``<data_dir>/logs/jobs/<job_id>-<attempt>.log`` and is killed (with
    its process group) after `timeout_s`. `argv` replaces the command for tests.

    With `warm_argv` (by default with the default command) one process is kept ready that
    has already loaded the training code (`prewarm`: again as a job starts, and after one
    ends if it is gone); a job of a
    project goes to it as a JSON line on its stdin, so it starts in milliseconds rather than
    after a Python start-up. It is still one process per attempt, killed the same way.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        timeout_s: float | None = 3600.0,
        argv: Callable[[JobSpec], Sequence[str]] = train_argv,
        env: Mapping[str, str] | None = None,
        warm_argv: Sequence[str] | None = None,
    ) -> None:
        self.log_dir = settings.data_dir / "logs" / "jobs"
        self.timeout_s = timeout_s
        self.argv = argv
        self.env = dict(env) if env is not None else settings_env(settings)
        if warm_argv is None and argv is train_argv:
            warm_argv = warm_train_argv()
        self.warm_argv = list(warm_argv) if warm_argv is not None else None
        self._warm: tuple[subprocess.Popen[bytes], Path] | None = None
        self._lock = threading.Lock()

    def log_path(self, job: JobSpec) -> Path:
        """The log file of one attempt."""
        return self.log_dir / f"{job.job_id}-{job.attempt}.log"

    def launch(self, job: JobSpec) -> LocalProcessHandle:
        """Start the job (in the warm process when one is ready, else in a new subprocess in
        its own process group) and return its handle."""
        path = self.log_path(job)
        path.parent.mkdir(parents=True, exist_ok=True)
        on_end = self.prewarm if self.warm_argv is not None else None
        warm = self._take_warm() if job.project else None
        if warm is not None:
            process, warm_log = warm
            warm_log.replace(path)  # the open log follows the rename
            line = json.dumps({key: getattr(job, key) for key in JOB_KEYS})
            try:
                assert process.stdin is not None
                process.stdin.write(line.encode() + b"\n")
                process.stdin.close()
            except OSError:  # it died just now: the handle reports its exit
                pass
            # The next one loads while this job runs: a follow-up job starts at once too.
            self.prewarm()
            return LocalProcessHandle(job, process, path, self.timeout_s, on_end=on_end,
                                      warm=True)
        with open(path, "wb") as log:
            process = subprocess.Popen(
                list(self.argv(job)), env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        return LocalProcessHandle(job, process, path, self.timeout_s, on_end=on_end)

    def prewarm(self) -> None:
        """Start a process that loads the training code and waits for a job, unless one is
        ready (or warm processes are off)."""
        if self.warm_argv is None:
            return
        with self._lock:
            if self._warm is not None and self._warm[0].poll() is None:
                return
            self.log_dir.mkdir(parents=True, exist_ok=True)
            path = self.log_dir / f".warm-{uuid.uuid4().hex[:8]}.log"
            with open(path, "wb") as log:
                process = subprocess.Popen(
                    self.warm_argv, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.PIPE, start_new_session=True,
                )
            self._warm = (process, path)

    def close(self) -> None:
        """Stop the waiting process, if any (it holds no job)."""
        with self._lock:
            warm, self._warm = self._warm, None
        if warm is not None:
            process, path = warm
            if process.stdin is not None:
                process.stdin.close()  # EOF: it exits on its own
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
            path.unlink(missing_ok=True)

    def _take_warm(self) -> tuple[subprocess.Popen[bytes], Path] | None:
        with self._lock:
            warm, self._warm = self._warm, None
        if warm is None:
            return None
        if warm[0].poll() is not None:  # it died while waiting (its log says why)
            return None
        return warm
