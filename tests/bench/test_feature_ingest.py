"""The feature-ingest benchmark runs the generic engine (`fti materialize` on the fraud example
project) end to end at a tiny size, through `fti bench`, and prints the figures it promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

KEYS = {
    "engine", "events", "bad", "raw_events_per_s", "pipeline_events_per_s", "ratio", "table",
    "offline_rows", "dlq",
}


def _fti_bench(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m fti bench feature-ingest ARGS` in a clean FTI_* environment."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("FTI_")}
    return subprocess.run(
        [sys.executable, "-m", "fti", "bench", "feature-ingest", *args], cwd=cwd, env=clean,
        capture_output=True, text=True, timeout=240, check=False,
    )


def test_generic_engine_prints_its_rate_against_the_raw_limit(tmp_path: Path) -> None:
    events = 2000
    done = _fti_bench(["--engine", "generic", "--events", str(events)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert set(result) == KEYS
    assert result["engine"] == "generic" and result["events"] == events
    assert result["table"] == "card_activity_v1"
    assert result["raw_events_per_s"] > 0 and result["pipeline_events_per_s"] > 0
    assert result["ratio"] > 0
    # Every valid transaction is in the group's offline table, every invalid one in the DLQ.
    assert 0 < result["bad"] < events
    assert result["offline_rows"] == events - result["bad"]
    assert result["dlq"] == result["bad"]


def test_the_engine_option_reaches_the_benchmark(tmp_path: Path) -> None:
    done = _fti_bench(["--engine", "nope"], tmp_path)
    assert done.returncode == 2
    assert "--engine: invalid choice: 'nope'" in done.stderr
    assert "'generic'" in done.stderr and "'builtin'" in done.stderr
