"""`fti up` end to end: broker and four services up and healthy, SIGTERM stops all cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fti.infra.embedded_broker import free_port
from tests.ops.test_supervisor import gone
from tests.support import wait_for

SERVICES = ("features", "monitor", "trainer", "inference")


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


@pytest.mark.slow
def test_up_runs_every_service_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    broker_port = free_port()
    ports = {name: free_port() for name in SERVICES}
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTI_")}
    env.update({
        "FTI_DATA_DIR": str(tmp_path / "data"),
        "FTI_BROKER__PORT": str(broker_port),
        "FTI_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{broker_port}",
        **{f"FTI_METRICS__{name.upper()}_PORT": str(port) for name, port in ports.items()},
    })
    out = open(tmp_path / "up.out", "wb")  # noqa: SIM115 - closed below
    runner = subprocess.Popen(
        [sys.executable, "-c", "from fti.ops.up import main; main()"], env=env, cwd=tmp_path,
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    children: list[int] = []
    try:
        for name, port in ports.items():
            wait_for(lambda port=port: status_of(port, "/healthz") == 200
                     or runner.poll() is not None, timeout_s=45, what=f"{name} /healthz")
            assert runner.poll() is None, (tmp_path / "up.out").read_text()
        for name in ("features", "monitor", "trainer"):
            wait_for(lambda name=name: status_of(ports[name], "/readyz") == 200, timeout_s=20,
                     what=f"{name} /readyz")
        assert status_of(ports["inference"], "/readyz") == 503  # no champion to load yet
        children = children_of(runner.pid)
        assert len(children) == len(SERVICES) + 1  # and the embedded broker
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
