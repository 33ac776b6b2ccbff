"""kill -9 the feature service at random points; after recovery every event is stored once,
with the same features an uninterrupted run computes."""

from __future__ import annotations

import math
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fti.connectors.offline.store import LanceOfflineStore
from fti.features.definitions import FEATURE_COLUMNS
from fti.features.training_data import read_offline
from fti.features.validation import parse_transaction
from fti.flows.features import card_features
from fti.flows.records import Decoded
from fti.ops.producer import StreamProducer
from fti.settings import Settings, ValidationSettings
from fti.synthetic.transactions import StreamSpec, generate
from tests.flows.test_service import service_env
from tests.support import wait_for

SPEC = StreamSpec(count=12000, drift_at=6000, bad_fraction=0.02, seed=21)


def reference_features() -> dict[str, dict[str, float]]:
    """Features per tx_id from the pure step, events in stream order, no crash."""
    from fti.flows.sources import KafkaRecord

    windows: dict = {}
    out = {}
    for i, record in enumerate(r for r in generate(SPEC) if r.kind == "transaction"):
        if record.bad:
            continue
        tx = parse_transaction(record.value, ValidationSettings())
        decoded = Decoded(KafkaRecord("t", 0, i, record.key, record.value, 0), tx)
        windows[tx.card_id], row = card_features(windows.get(tx.card_id), decoded)
        out[tx.tx_id] = {name: row[name] for name in FEATURE_COLUMNS}
    return out


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "fti", "flow", "features"], env=env,
        stdout=open(log, "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )


@pytest.mark.slow
def test_kill_9_and_recover_loses_and_duplicates_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    env = service_env(settings, FTI_RECOVERY__DIR=str(tmp_path / "recovery"),
                      FTI_RECOVERY__SNAPSHOT_S="0.3", FTI_METRICS__FEATURES_PORT="0")
    log = tmp_path / "features.log"
    producer = StreamProducer(settings, SPEC)
    sending = threading.Thread(target=lambda: (producer.send(SPEC.count, rate=1500),
                                               producer.finish()))
    sending.start()
    rng = random.Random(4)
    stored_at_kill = [0]
    offline = LanceOfflineStore(settings.offline_dir)
    for _ in range(4):
        process = start(env, log)
        # Kill while it works: after it stored some more rows, at a random moment.
        # Capped well below the end: a kill must land while events are still being stored.
        more = min(stored_at_kill[-1] + rng.randint(300, 1500), int(SPEC.count * 0.8))
        wait_for(lambda more=more: offline.count("card_features") >= more, what=f"{more} rows")
        time.sleep(rng.uniform(0.0, 0.1))
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        stored_at_kill.append(offline.count("card_features"))
    sending.join()

    running_before = log.read_text().count("flow features running")
    process = start(env, log)
    try:
        # SIGTERM only once it runs (the stores may be complete already after the last kill).
        wait_for(lambda: log.read_text().count("flow features running") > running_before,
                 what="the final flow to start")
        valid = SPEC.count - producer.counts.bad_transactions
        wait_for(lambda: read_offline(settings.offline_dir).features.num_rows >= valid
                 and read_offline(settings.offline_dir).labels.num_rows >= producer.counts.labels,
                 timeout_s=120, what="every event after the crashes")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()[-2000:]

    # The kills hit a flow in the middle of the stream, and recovery state was written.
    assert all(0 < n < valid for n in stored_at_kill[1:]), stored_at_kill
    assert any((tmp_path / "recovery" / "features").iterdir())
    snapshot = read_offline(settings.offline_dir)  # read_offline dedupes: count raw rows too
    raw = LanceOfflineStore(settings.offline_dir)
    assert raw.count("card_features") == snapshot.features.num_rows == valid
    assert raw.count("labels") == snapshot.labels.num_rows == producer.counts.labels
    rows = snapshot.features.to_pylist()
    assert len({r["tx_id"] for r in rows}) == valid
    expected = reference_features()
    mismatched = [
        r["tx_id"] for r in rows
        if not all(math.isclose(r[n], expected[r["tx_id"]][n], rel_tol=1e-9, abs_tol=1e-9)
                   for n in FEATURE_COLUMNS)
    ]
    assert not mismatched, f"{len(mismatched)} rows differ from an uninterrupted run"
    print("offline rows at each kill:", stored_at_kill)
