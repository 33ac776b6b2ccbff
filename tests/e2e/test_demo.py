"""`fti demo` end to end, as a user runs it: the fraud example project through the generic
feature engine, monitor, trainer and inference services: drift, retrain, hot swap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_closes_the_loop(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTI_")}
    env["FTI_DATA_DIR"] = str(tmp_path / "data")
    result = subprocess.run(
        [sys.executable, "-m", "fti", "demo", "--project",
         str(Path(__file__).resolve().parents[2] / "examples" / "fraud")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])

    assert summary["champion_version"] >= 2
    assert len([v for v, n in summary["predictions_by_version"].items() if n > 0]) >= 2
    assert summary["events_produced"] == summary["offline_feature_rows"] + summary["dlq_events"]
    assert summary["dlq_events"] > 0  # the demo sends a little bad input
    assert summary["predictions"] == summary["offline_feature_rows"]  # every valid event scored
    # v1 and a retrained version were promoted; a later candidate may fail its gates (the
    # warm trainer retrains often), and the champion is a promoted one.
    assert summary["models"][0]["promoted"] and any(m["promoted"] for m in summary["models"][1:])
    promoted = {m["version"] for m in summary["models"] if m["promoted"]}
    assert summary["champion_version"] in promoted
    assert summary["drift_detected_at_event"] >= 8000  # not before the drift was injected
    assert 0 < summary["drift_to_deploy_seconds"] < 60
    assert summary["label_rows"] > 0 and summary["online_entities"] > 0
    assert summary["model"] == "fraud-xgb" and summary["project"].endswith("examples/fraud")
    assert all(m["metric"] == "roc_auc" for m in summary["models"])
    # the stores and registry stay behind for the user to explore
    registry = subprocess.run(
        [sys.executable, "-m", "fti", "registry", "list"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )
    assert registry.returncode == 0, registry.stdout + registry.stderr
    champion_line = next(line for line in registry.stdout.splitlines() if "champion" in line)
    assert champion_line.split()[0] == str(summary["champion_version"])
    assert "approved" in champion_line  # promoted by its gates, recorded as the approver
