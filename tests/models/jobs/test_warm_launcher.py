"""The local launcher's warm process: started before a job, handed the job on stdin, replaced
once the job ends; a dead or absent warm process falls back to a cold start."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from fti.models.jobs.launchers import JobSpec, LocalProcessLauncher
from fti.settings import Settings

#: Stands in for `fti train --job-from-stdin`: "loads" for a while, then reads its job.
WARM = """
import json, sys, time
print("loaded", flush=True)
line = sys.stdin.readline()
if not line:
    sys.exit(0)
job = json.loads(line)
print(json.dumps({"job": job, "got_at": time.time()}))
"""
COLD = "import json, sys; print(json.dumps({'cold': sys.argv[1]}))"


def _launcher(tmp_path: Path, warm: str = WARM) -> LocalProcessLauncher:
    return LocalProcessLauncher(
        Settings(data_dir=tmp_path), argv=lambda job: [sys.executable, "-c", COLD, job.job_id],
        warm_argv=[sys.executable, "-c", warm])


def _job(job_id: str, project: str | None = "proj") -> JobSpec:
    return JobSpec(job_id, "m", "drift", datetime.now(UTC), project=project)


def test_a_job_goes_to_the_warm_process_and_a_new_one_waits_for_the_next(tmp_path: Path) -> None:
    launcher = _launcher(tmp_path)
    launcher.prewarm()
    first = launcher._warm
    assert first is not None
    deadline = time.monotonic() + 30
    while b"loaded" not in first[1].read_bytes() and time.monotonic() < deadline:
        time.sleep(0.05)

    handle = launcher.launch(_job("j1"))

    assert handle.warm and handle.process is first[0]
    second = launcher._warm  # the next one loads while this job runs
    assert second is not None and second[0] is not first[0] and second[0].poll() is None
    assert handle.wait(30) == "succeeded", handle.log_path.read_text()
    assert handle.result is not None and handle.result["job"] == {
        "project": "proj", "model": "m", "reason": "drift", "job_id": "j1"}
    log = launcher.log_path(_job("j1")).read_text()
    assert log.startswith("loaded\n") and not first[1].exists()  # the warm log became the job's
    assert launcher._warm is second  # still waiting: the job's end started no other
    launcher.close()
    assert second[0].wait(10) == 0 and launcher._warm is None and not second[1].exists()


def test_without_a_live_warm_process_or_a_project_the_job_starts_cold(tmp_path: Path) -> None:
    launcher = _launcher(tmp_path, warm="import sys; sys.exit(3)")
    launcher.prewarm()
    warm = launcher._warm
    assert warm is not None and warm[0].wait(30) == 3  # died before any job came
    handle = launcher.launch(_job("j2"))
    assert not handle.warm and handle.wait(30) == "succeeded"
    assert handle.result == {"cold": "j2"}
    no_project = _launcher(tmp_path / "b")
    no_project.prewarm()
    handle = no_project.launch(_job("j3", project=None))
    assert not handle.warm and handle.wait(30) == "succeeded"
    assert json.loads(no_project.log_path(_job("j3")).read_text()) == {"cold": "j3"}
    no_project.close()


def test_warm_processes_are_off_when_the_command_is_replaced(tmp_path: Path) -> None:
    launcher = LocalProcessLauncher(Settings(data_dir=tmp_path),
                                    argv=lambda job: [sys.executable, "-c", "pass"])
    launcher.prewarm()
    assert launcher.warm_argv is None and launcher._warm is None
