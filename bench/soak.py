"""Soak: `fti up` under a steady producer for N minutes; memory and restarts per service.

Starts `fti up` (embedded broker, four supervised services) on free ports in a fresh data
directory, produces transactions and labels at `--rate` per second, samples each service's
RSS every `--sample-s` seconds and counts restarts (a service whose pid changed). Prints one
JSON line: RSS at start (after the first sample past warm-up) and end per service, the growth,
restarts, events produced, and the models trained meanwhile.
Usage: fti bench soak --minutes 30 --rate 200
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from fti.connectors.kafka.clients import wait_for_broker
from fti.connectors.kafka.reader import TopicsReader
from fti.connectors.offline.store import LanceOfflineStore
from fti.features.definitions import FEATURES_TABLE
from fti.infra.embedded_broker import free_port
from fti.ops.producer import StreamProducer
from fti.settings import KafkaSettings, Settings, settings_in
from fti.synthetic.transactions import BAD_KINDS, StreamSpec

SERVICES = {"features": "flow features", "monitor": "flow monitor",
            "inference": "flow inference", "trainer": "fti trainer"}


def children(pid: int) -> list[int]:
    """Direct children of `pid` (from /proc)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def service_pids(up_pid: int) -> dict[str, int]:
    """Service name → pid among `fti up`'s children."""
    found = {}
    for pid in children(up_pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        for name, marker in SERVICES.items():
            if marker in cmdline:
                found[name] = pid
    return found


def rss_mb(pid: int) -> float:
    """Resident set size of `pid` in MiB."""
    with open(f"/proc/{pid}/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def count_records(kafka: KafkaSettings, topic: str, quiet_s: float = 2.0) -> int:
    """Records in `topic`, read from the beginning until none arrived for `quiet_s`."""
    reader, total = TopicsReader(kafka, [topic]), 0
    quiet_since = time.monotonic()
    try:
        while time.monotonic() - quiet_since < quiet_s:
            batch = reader.read_batch(10_000, 0.2)
            if batch:
                total += len(batch)
                quiet_since = time.monotonic()
    finally:
        reader.close()
    return total


def accounted(settings: Settings, produced: int, timeout_s: float = 180.0) -> dict[str, int]:
    """Wait until offline rows + DLQ records cover every produced transaction (or time-out);
    return both counts and how many are missing."""
    offline = LanceOfflineStore(settings.offline_location)
    deadline = time.monotonic() + timeout_s
    while True:
        rows = offline.count(FEATURES_TABLE)
        dlq = count_records(settings.kafka, settings.topics.dlq)
        if rows + dlq >= produced or time.monotonic() > deadline:
            return {"offline_feature_rows": rows, "dlq_events": dlq,
                    "missing": produced - rows - dlq}
        time.sleep(2)


def main(minutes: float, rate: float, sample_s: float = 30.0, warmup_s: float = 60.0,
         bad_fraction: float = 0.001 * len(BAD_KINDS)) -> dict[str, Any]:
    """Run the soak; return the figures."""
    data_dir = Path(tempfile.mkdtemp(prefix="fti-soak-"))
    port = free_port()
    ports = {name: free_port() for name in SERVICES}
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTI_")} | {
        "FTI_DATA_DIR": str(data_dir), "FTI_BROKER__PORT": str(port),
        "FTI_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        **{f"FTI_METRICS__{name.upper()}_PORT": str(p) for name, p in ports.items()},
    }
    up = subprocess.Popen([sys.executable, "-m", "fti", "up"], env=env,
                          stdout=open(data_dir / "up.log", "wb"), stderr=subprocess.STDOUT)
    wait_for_broker(f"127.0.0.1:{port}", 60)
    settings = settings_in(env)
    count = int(minutes * 60 * rate)
    # Every kind of bad input, poison included, at bad_fraction / len(BAD_KINDS) each.
    producer = StreamProducer(settings, StreamSpec(count=count, seed=3,
                                                   bad_fraction=bad_fraction))
    sender = threading.Thread(target=producer.send, args=(count, rate), daemon=True)
    started = time.monotonic()
    sender.start()
    first: dict[str, tuple[int, float]] = {}
    last: dict[str, tuple[int, float]] = {}
    pids_seen: dict[str, set[int]] = {name: set() for name in SERVICES}
    samples = []
    while time.monotonic() - started < minutes * 60:
        time.sleep(sample_s)
        now = {name: (pid, rss_mb(pid)) for name, pid in service_pids(up.pid).items()}
        for name, (pid, _) in now.items():
            pids_seen[name].add(pid)
        if time.monotonic() - started >= warmup_s:
            for name, value in now.items():
                first.setdefault(name, value)
        last.update(now)
        samples.append({"t": round(time.monotonic() - started), **{k: round(v[1], 1)
                                                                  for k, v in now.items()}})
    sender.join()
    accounting = accounted(settings, producer.counts.transactions)  # before the broker stops
    up.send_signal(signal.SIGTERM)
    code = up.wait(120)
    from fti.models.registry import ModelRegistry

    versions = ModelRegistry(settings.registry_location).versions(settings.training.model_name)
    return {
        "minutes": minutes, "rate": rate, "events_produced": producer.counts.transactions,
        "bad_events_produced": producer.counts.bad_transactions, **accounting,
        "rss_start_mb": {k: round(v[1], 1) for k, v in first.items()},
        "rss_end_mb": {k: round(v[1], 1) for k, v in last.items()},
        "rss_growth_mb": {k: round(last[k][1] - first[k][1], 1) for k in first if k in last},
        "restarts": {k: max(len(v) - 1, 0) for k, v in pids_seen.items()},
        "models_trained": len(versions), "up_exit_code": code, "samples": samples,
        "data_dir": str(data_dir),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--sample-s", type=float, default=30.0)
    parser.add_argument("--bad-fraction", type=float, default=0.001 * len(BAD_KINDS),
                        help="share of bad events, spread evenly over every kind (poison too)")
    args = parser.parse_args()
    print(json.dumps(main(args.minutes, args.rate, args.sample_s,
                          bad_fraction=args.bad_fraction)))
