"""`fti up --project` end to end on a copy of the fraud example: the broker and the project's
four services (materialize, monitor, trainer, inference) up and healthy on their ports,
SIGTERM stops all cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

import pytest

from fti.features.project.loader import load_project
from fti.infra.embedded_broker import free_port
from fti.ops.scenario import load_scenario
from tests.example_projects import EXAMPLES, ExampleProject
from tests.ops.test_supervisor import gone
from tests.support import wait_for

#: The metrics port of each service, by the name of its `FTI_METRICS__<NAME>_PORT` setting.
SERVICES = ("features", "monitor", "trainer", "inference")
#: The services `fti up --project` runs for a project with models -> the port each serves on.
PORT_OF = {"materialize": "features", "monitor": "monitor", "trainer": "trainer",
           "inference": "inference"}


def status_of(port: int, path: str) -> int | None:
    """HTTP status of GET 127.0.0.1:port/path; None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as ex:
        return ex.code
    except OSError:
        return None


def children_of(pid: int) -> list[int]:
    """Pids whose parent is `pid`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def logs(data_dir: Path) -> str:
    parts = [f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}"
             for p in sorted((data_dir / "logs").glob("*.log"))]
    return "\n".join(parts)


def up_env(data_dir: Path, broker_port: int, ports: dict[str, int]) -> dict[str, str]:
    """The environment of `fti up` with its own embedded broker on `broker_port` and the
    services' metrics on `ports` (by port name)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTI_")}
    env.update({
        "FTI_DATA_DIR": str(data_dir), "FTI_BROKER__PORT": str(broker_port),
        "FTI_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{broker_port}",
        **{f"FTI_METRICS__{name.upper()}_PORT": str(port) for name, port in ports.items()},
    })
    return env


def applied_example(name: str, directory: Path, env: dict[str, str]) -> ExampleProject:
    """`examples/<name>` copied to `directory` (its topic names as they are: `fti up` starts
    a broker of its own) and applied as a user does, by `fti apply --project`."""
    shutil.copytree(EXAMPLES / name, directory, ignore=shutil.ignore_patterns("__pycache__"))
    applied = subprocess.run([sys.executable, "-m", "fti", "apply", "--project", str(directory)],
                             env=env, capture_output=True, text=True, timeout=120)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    project = load_project(directory)
    topics = {stream: s.topic for stream, s in project.streams.items()}
    return ExampleProject(directory, project, load_scenario(directory), topics)


def start_up(project: Path, env: dict[str, str], cwd: Path, out: IO[bytes]
             ) -> subprocess.Popen[bytes]:
    """`fti up --project PROJECT` as a user starts it."""
    return subprocess.Popen(
        [sys.executable, "-m", "fti", "up", "--project", str(project)], env=env, cwd=cwd,
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_up_runs_every_service_of_the_project_and_stops_cleanly_on_sigterm(
    tmp_path: Path,
) -> None:
    broker_port = free_port()
    ports = {name: free_port() for name in SERVICES}
    env = up_env(tmp_path / "data", broker_port, ports)
    example = applied_example("fraud", tmp_path / "fraud", env)
    out = open(tmp_path / "up.out", "wb")  # noqa: SIM115 - closed below
    runner = start_up(example.directory, env, tmp_path, out)
    children: list[int] = []
    try:
        for service, port_name in PORT_OF.items():
            port = ports[port_name]
            wait_for(lambda port=port: status_of(port, "/healthz") == 200
                     or runner.poll() is not None, timeout_s=60, what=f"{service} /healthz")
            assert runner.poll() is None, (tmp_path / "up.out").read_text()
        for service in ("materialize", "monitor", "trainer"):
            wait_for(lambda service=service: status_of(ports[PORT_OF[service]], "/readyz")
                     == 200, timeout_s=30, what=f"{service} /readyz")
        assert status_of(ports["inference"], "/readyz") == 503  # no champion to load yet
        children = children_of(runner.pid)
        assert len(children) == len(PORT_OF) + 1  # and the embedded broker
        commands = {" ".join(Path(f"/proc/{pid}/cmdline").read_text().split("\0")[3:5])
                    for pid in children}
        assert {"materialize --project", "flow monitor", "trainer --project",
                "flow inference"} <= commands, commands
    finally:
        runner.send_signal(signal.SIGTERM)
        try:
            code = runner.wait(40)
        except subprocess.TimeoutExpired:
            runner.kill()
            for pid in children:
                if not gone(pid):
                    os.kill(pid, signal.SIGKILL)
            raise
        finally:
            out.close()
    text = (tmp_path / "up.out").read_text()
    assert code == 0, f"{text}\n{logs(tmp_path / 'data')}"
    assert f"127.0.0.1:{broker_port} (embedded)" in text
    assert all(gone(pid) for pid in children), "a service or the broker outlived `fti up`"
    service_logs = {p.stem for p in (tmp_path / "data" / "logs").glob("*.log")}
    assert set(PORT_OF) <= service_logs, service_logs
