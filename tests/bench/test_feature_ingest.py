"""The feature-ingest benchmark runs `fti materialize` on the example project end to end at a
tiny size, through `fti bench`, and prints the figures it promises; it holds no default
project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fraud"
KEYS = {
    "events", "bad", "raw_events_per_s", "pipeline_events_per_s", "ratio", "stream",
    "offline_rows", "dlq",
}


def _fti_bench(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m fti bench feature-ingest ARGS` in a clean FTI_* environment."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("FTI_")}
    return subprocess.run(
        [sys.executable, "-m", "fti", "bench", "feature-ingest", *args], cwd=cwd, env=clean,
        capture_output=True, text=True, timeout=240, check=False,
    )


def test_materialize_prints_its_rate_against_the_raw_limit(tmp_path: Path) -> None:
    events = 2000
    done = _fti_bench(["--project", str(EXAMPLE), "--events", str(events)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert set(result) == KEYS
    assert result["events"] == events and result["stream"] == "transactions"
    assert result["raw_events_per_s"] > 0 and result["pipeline_events_per_s"] > 0
    assert result["ratio"] > 0
    # Every valid event is in the group's offline table, every invalid one in the DLQ.
    assert 0 < result["bad"] < events
    assert result["offline_rows"] == {"card_activity_v1": events - result["bad"]}
    assert result["dlq"] == result["bad"]


def test_the_project_is_a_required_option(tmp_path: Path) -> None:
    done = _fti_bench(["--events", "10"], tmp_path)
    assert done.returncode == 2
    assert "the following arguments are required: --project" in done.stderr
