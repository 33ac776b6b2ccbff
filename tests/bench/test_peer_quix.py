"""`fti bench peer-quix` at a tiny size: Quix Streams does the feature engine's job on the same
broker and topic, and its answers are fti's.

Marked slow: it builds the peer venv (`make peer-venv`, quixstreams from PyPI, ~30 s the first
time, a no-op after) and runs the broker, the fti flow and four Quix processes (~40 s). It
builds the venv through the Makefile target rather than skipping without it: a missing venv is
a set-up step, not a reason for the benchmark to go untested, and this way CI checks the
target too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fti.bench.peer_quix import PEER_PYTHON, REPO

KEYS = {
    "benchmark", "events", "invalid", "fti_eps", "quix_eps", "raw_eps", "fti_over_quix",
    "fti_over_raw", "quix_over_raw", "quix_changelog", "quix_windows", "quix_timed_from",
    "fti_timed_from", "quix_runs", "fti_only_features", "fti_cpu_us_per_event", "fti_load_1m",
    "stream", "group",
}
FRAUD = REPO / "examples" / "fraud"


@pytest.fixture(scope="module")
def peer_python() -> Path:
    """The peer venv's Python, made by the Makefile target if it is not there yet."""
    done = subprocess.run(["make", "peer-venv"], cwd=REPO, capture_output=True, text=True,
                          timeout=540, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert PEER_PYTHON.exists()
    return PEER_PYTHON


@pytest.mark.slow
def test_quix_does_the_same_job_with_the_same_answers(peer_python: Path, tmp_path: Path) -> None:
    events = 3000
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("FTI_")}
    done = subprocess.run(
        [sys.executable, "-m", "fti", "bench", "peer-quix", "--project", str(FRAUD),
         "--events", str(events), "--peer-python", str(peer_python)],
        cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=400, check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert any(line.startswith("quix ") and "from its first message" in line for line in lines)

    assert set(result) == KEYS
    assert result["benchmark"] == "peer-quix" and result["events"] == events
    assert result["stream"] == "transactions" and result["group"] == "card_activity"
    assert result["fti_eps"] > 0 and result["quix_eps"] > 0 and result["raw_eps"] > 0
    assert result["fti_over_quix"] == pytest.approx(result["fti_eps"] / result["quix_eps"],
                                                    rel=0.01)
    assert result["quix_changelog"] is True and result["quix_windows"] == ["1h", "24h"]
    assert result["fti_only_features"] == ["distinct_countries_24h", "secs_since_prev"]
    runs = result["quix_runs"]
    assert [(r["windows"], r["changelog"]) for r in runs] == [
        (["1h", "24h"], True), (["1h", "24h"], False), (["1h"], True), (["1h"], False)]
    valid = events - result["invalid"]
    assert 0 < result["invalid"] < events
    for run in runs:
        # The same validation: Quix keeps exactly the events fti's decoder accepts.
        assert run["valid"] == valid
        assert run["cpu_us_per_event"] > 0
        check = run["check"]
        # One row per card on each side; every card's latest features right by each side's
        # window (Quix: [t - w, t]; fti: 60 buckets of w/60), so equal but where an event lies
        # between the two windows' starts, which is rare at this size (5 h of event time).
        assert check["quix_rows"] == check["fti_rows"] == check["entities"] > 0
        assert check["quix_as_defined"] == check["fti_as_defined"] == check["entities"]
        assert check["same"] >= 0.9 * check["entities"]
