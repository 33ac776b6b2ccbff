"""The supervisor: backoff maths, restarts of a crashing service, graceful and forced stops."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import pytest

from fti.ops.supervisor import Backoff, ServiceSpec, Supervisor, crashes_in_window
from fti.settings import Settings
from tests.support import wait_for

# Prints its start time, runs 0.5 s, crashes.
CRASHING = "import time; print(time.time(), flush=True); time.sleep(0.5); raise SystemExit(1)"
# Starts a grandchild, says so, and exits 0 on SIGTERM (leaving the grandchild behind).
WELL_BEHAVED = """
import signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("ready", child.pid, flush=True)
while True:
    time.sleep(0.05)
"""
# Ignores SIGTERM.
STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


def python(script: str) -> tuple[str, ...]:
    return (sys.executable, "-c", script)


def gone(pid: int) -> bool:
    """True if no process `pid` runs (a zombie nobody reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return " Z " in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1][:4]
    except FileNotFoundError:
        return True


def log_lines(supervisor: Supervisor, name: str) -> list[str]:
    path = supervisor.log_file(name)
    return path.read_text().splitlines() if path.exists() else []


def test_backoff_doubles_from_one_second_up_to_thirty() -> None:
    policy = Backoff()
    assert [policy.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]
    with pytest.raises(ValueError, match="failures must be >= 1"):
        policy.delay(0)


def test_backoff_resets_after_a_long_enough_run() -> None:
    policy = Backoff()
    failures = 0
    for uptime in (0.5, 0.5, 0.5):
        failures = policy.failures_after_crash(failures, uptime)
    assert policy.delay(failures) == 4.0
    assert policy.failures_after_crash(failures, uptime_s=60.0) == 1


def test_crashes_are_counted_within_the_window_only() -> None:
    assert crashes_in_window([], now=10.0, window_s=5.0) == 0
    assert crashes_in_window([1.0, 6.0, 9.0, 10.0], now=10.0, window_s=4.0) == 3


def test_crashing_service_is_restarted_with_increasing_delays(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backoff = Backoff(initial_s=0.2, factor=2.0, max_s=5.0, crash_limit=3)
    supervisor = Supervisor([ServiceSpec("crashy", python(CRASHING))], os.environ, tmp_path,
                            backoff=backoff, poll_s=0.05)
    with caplog.at_level(logging.INFO, logger="fti.ops.supervisor"):
        supervisor.start()
        try:
            wait_for(lambda: len(log_lines(supervisor, "crashy")) >= 4, timeout_s=20,
                     what="three restarts of the crashing service")
        finally:
            supervisor.stop(timeout_s=5)
    status = supervisor.status()["crashy"]
    assert status.restarts >= 3
    crashes = [r for r in caplog.records if getattr(r, "event", None) == "crashed"]
    assert len(crashes) >= 3 and {getattr(r, "exit_code", None) for r in crashes} == {1}
    assert list(status.restart_delays[:3]) == [0.2, 0.4, 0.8]
    starts = [float(line) for line in log_lines(supervisor, "crashy")]
    for i, delay in enumerate(status.restart_delays[:3]):
        # Each restart waited at least the run (0.5 s) plus its backoff delay.
        assert starts[i + 1] - starts[i] >= 0.5 + delay - 0.05, (starts, status)
    loops = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert loops and "crashed 3 times" in loops[0].getMessage()
    assert getattr(loops[0], "service", None) == "crashy"


def test_a_service_that_stayed_up_long_enough_restarts_after_the_initial_delay(
    tmp_path: Path,
) -> None:
    backoff = Backoff(initial_s=0.1, reset_after_s=0.3)
    supervisor = Supervisor([ServiceSpec("crashy", python(CRASHING))], os.environ, tmp_path,
                            backoff=backoff, poll_s=0.05)
    supervisor.start()
    try:
        wait_for(lambda: supervisor.status()["crashy"].restarts >= 2, timeout_s=15,
                 what="two restarts")
    finally:
        supervisor.stop(timeout_s=5)
    assert set(supervisor.status()["crashy"].restart_delays) == {0.1}


def test_well_behaved_service_stops_cleanly_and_leaves_nothing_behind(tmp_path: Path) -> None:
    supervisor = Supervisor([ServiceSpec("good", python(WELL_BEHAVED))], os.environ, tmp_path,
                            poll_s=0.05).start()
    try:
        wait_for(lambda: bool(log_lines(supervisor, "good")), timeout_s=15, what="ready line")
    finally:
        codes = supervisor.stop(timeout_s=10)
    assert codes == {"good": 0}
    status = supervisor.status()["good"]
    assert status.restarts == 0 and not status.running
    grandchild = int(log_lines(supervisor, "good")[0].split()[1])
    wait_for(lambda: gone(status.pid or 0) and gone(grandchild), timeout_s=5,
             what="the service and its child to be gone")


def test_shutdown_kills_the_stubborn_and_restarts_nothing(tmp_path: Path) -> None:
    specs = [ServiceSpec("crashy", python(CRASHING)), ServiceSpec("stubborn", python(STUBBORN))]
    supervisor = Supervisor(specs, os.environ, tmp_path, poll_s=0.05,
                            backoff=Backoff(initial_s=0.05, max_s=0.05)).start()
    try:
        wait_for(lambda: supervisor.status()["crashy"].restarts >= 1
                 and bool(log_lines(supervisor, "stubborn")), timeout_s=15,
                 what="a restart of crashy and stubborn ready")
    finally:
        started = time.monotonic()
        codes = supervisor.stop(timeout_s=1.0)
    assert time.monotonic() - started < 5
    assert codes["stubborn"] == -9
    assert codes["crashy"] in (1, 0, -15)
    before = {name: s.restarts for name, s in supervisor.status().items()}
    starts = len(log_lines(supervisor, "crashy"))
    time.sleep(0.5)  # several poll intervals and backoff delays: nothing may start again
    assert {name: s.restarts for name, s in supervisor.status().items()} == before
    assert len(log_lines(supervisor, "crashy")) == starts
    assert all(not s.running for s in supervisor.status().values())


def test_up_gives_up_on_a_broker_that_keeps_dying(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    from fti.ops import up

    class Dead:
        bootstrap_servers = "127.0.0.1:1"

        def exit_code(self) -> int:
            return -9

    now = time.monotonic()
    deaths = [now - 1.0] * (up.BROKER_RESTARTS + 1)
    with caplog.at_level(logging.ERROR, logger="fti.ops.up"):
        assert up._replace_broker(Settings(data_dir=tmp_path), Dead(), tmp_path, deaths) is None
    assert "not restarting it again" in caplog.text and "code -9" in caplog.text
