"""The tutorial (docs/tutorial.md), step by step, as a new user runs it: every command it
shows, against the real embedded broker, on the project `fti init` writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import IO

import pyarrow.parquet as pq
import pytest

from fti.infra.embedded_broker import EmbeddedBroker, free_port
from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = (ROOT / "docs" / "tutorial.md").read_text()


def fti(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert f"fti {args[0]}" in TUTORIAL, f"the tutorial does not show `fti {args[0]}`"
    return subprocess.run([sys.executable, "-m", "fti", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def service(args: tuple[str, ...], cwd: Path, env: dict[str, str],
            log: IO[str]) -> subprocess.Popen[str]:
    """A long-running `fti …` command, its output to `log`."""
    return subprocess.Popen([sys.executable, "-m", "fti", *args], cwd=cwd, env=env, stdout=log,
                            stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_the_tutorial_runs_as_written(broker: EmbeddedBroker, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTI_")}
    env |= {"FTI_KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "FTI_METRICS__FEATURES_PORT": "0", "PYTHONUNBUFFERED": "1"}
    done = fti("init", "shop", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    for step in ("plan", "apply"):
        done = fti(step, "--project", "shop", cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
    assert "applied definitions v1" in done.stdout

    assert "python examples/tutorial/produce_payments.py" in TUTORIAL
    produced = subprocess.run(
        [sys.executable, str(ROOT / "examples/tutorial/produce_payments.py"),
         "--bootstrap", broker.bootstrap_servers, "--payments", "500"],
        capture_output=True, text=True, timeout=60, check=False)
    assert produced.returncode == 0, produced.stderr
    assert "produced 500 payments and 100 chargebacks" in produced.stdout

    assert "fti materialize --project shop" in TUTORIAL
    log = open(tmp_path / "materialize.log", "w")  # noqa: SIM115 - closed below
    engine = service(("materialize", "--project", "shop"), tmp_path, env, log)
    out = tmp_path / "payment_risk.parquet"
    try:
        def trained() -> bool:
            done = fti("features", "training", "payment_risk", "--project", "shop",
                       "--out", str(out), cwd=tmp_path, env=env)
            assert engine.poll() is None, (tmp_path / "materialize.log").read_text()
            return done.returncode == 0 and pq.read_table(out).num_rows == 100 and \
                pq.read_table(out)["merchant_activity__count_15m"].null_count == 0
        wait_for(trained, timeout_s=120, what="the view's training data")
        done = fti("features", "online", "merchant_activity", "m-1", "m-9", "--project", "shop",
                   cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
    finally:
        engine.send_signal(signal.SIGTERM)
        code = engine.wait(60)
        log.close()
    assert code == 0, (tmp_path / "materialize.log").read_text()

    assert "fti train --project shop --model payment-risk" in TUTORIAL
    trained = fti("train", "--project", "shop", "--model", "payment-risk", cwd=tmp_path, env=env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    result = json.loads(trained.stdout.strip().splitlines()[-1])
    assert result["model"] == "payment-risk" and result["version"] == 1
    assert {"roc_auc", "pr_auc", "f1", "log_loss"} <= set(result["metrics"])
    assert result["promoted"] == (result["metrics"]["roc_auc"] >= 0.7), result
    assert result["published"] == (["registered", "promoted"] if result["promoted"]
                                   else ["registered"])

    known, unknown = (json.loads(line) for line in done.stdout.splitlines())
    assert known["status"] == "ok" and known["count_15m"] >= 1 and known["amount_sum_1h"] > 0
    assert unknown["status"] == "missing"
    table = pq.read_table(out)
    assert {"customer_activity__amount_max_1d", "customer_activity__secs_since_previous",
            "merchant_activity__count_15m", "disputed"} <= set(table.column_names)


@pytest.mark.slow
def test_up_runs_a_projects_engine_as_a_service(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTI_")}
    env |= {"FTI_BROKER__PORT": str(port), "FTI_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
            "FTI_METRICS__FEATURES_PORT": str(free_port()), "PYTHONUNBUFFERED": "1"}
    for args in (("init", "shop"), ("apply", "--project", "shop")):
        assert fti(*args, cwd=tmp_path, env=env).returncode == 0
    assert "fti up --project shop" in TUTORIAL
    log = open(tmp_path / "up.log", "w")  # noqa: SIM115 - closed below
    up = service(("up", "--project", "shop"), tmp_path, env, log)
    out = tmp_path / "risk.parquet"
    try:
        wait_for(lambda: "materialize" in (tmp_path / "up.log").read_text()
                 and up.poll() is None and status(env) == 200, timeout_s=60,
                 what="fti up serving the engine")
        produced = subprocess.run(
            [sys.executable, str(ROOT / "examples/tutorial/produce_payments.py"),
             "--bootstrap", f"127.0.0.1:{port}", "--payments", "200"],
            capture_output=True, text=True, timeout=60, check=False)
        assert produced.returncode == 0, produced.stderr

        def trained() -> bool:
            done = fti("features", "training", "payment_risk", "--project", "shop",
                       "--out", str(out), cwd=tmp_path, env=env)
            return done.returncode == 0 and pq.read_table(out).num_rows == 40
        wait_for(trained, timeout_s=120, what="the view's training data")
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(60)
        log.close()
    assert code == 0, (tmp_path / "up.log").read_text()[-3000:]
    assert (tmp_path / "shop" / ".fti" / "recovery" / "materialize").is_dir()  # recovery on


def status(env: dict[str, str]) -> int | None:
    try:
        url = f"http://127.0.0.1:{env['FTI_METRICS__FEATURES_PORT']}/readyz"
        return urllib.request.urlopen(url, timeout=2).status
    except OSError:
        return None
