"""Soak: `fti up` on a project under a steady producer for N minutes; memory and restarts per
service.

Applies the project (`--project DIR`) to a fresh data directory and starts `fti up --project`
on it (embedded broker, the project's supervised services: its feature engine and, when it
declares models, monitor, trainer and inference) on free ports, produces the project's
scenario (events of its scored stream, `--bad-fraction` of them invalid, and the other
streams' records such as labels) at `--rate` events per second, samples each service's RSS
every `--sample-s` seconds and counts restarts (a service whose pid changed). At the end it
waits until the offline rows of every group of the scored stream plus its DLQ account for
every event produced. Prints one JSON line: RSS at start (after the first sample past warm-up)
and end per service, the growth, restarts, events produced, the accounting, and the model
versions trained meanwhile.
Usage: fti bench soak --project DIR --minutes 30 --rate 200
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

from fti.bench.projects import (
    BenchProject,
    Produced,
    add_project_option,
    open_project,
    produce,
)
from fti.connectors.kafka.clients import ensure_topic_names, ensure_topics, wait_for_broker
from fti.connectors.kafka.reader import TopicsReader
from fti.connectors.offline.store import LanceOfflineStore
from fti.features.project.applied import apply
from fti.infra.embedded_broker import free_port
from fti.settings import KafkaSettings, Settings, settings_in

#: Service name -> what its command line holds (`fti up --project` starts them).
SERVICES = {"materialize": "fti materialize", "monitor": "flow monitor",
            "inference": "flow inference", "trainer": "fti trainer"}
#: Metrics port setting of each service.
PORTS = {"materialize": "FEATURES", "monitor": "MONITOR", "inference": "INFERENCE",
         "trainer": "TRAINER"}
BAD_FRACTION = 0.018


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


def accounted(settings: Settings, bench: BenchProject, produced: int,
              timeout_s: float = 180.0) -> dict[str, Any]:
    """Wait until the offline rows of each group of the scored stream plus the stream's DLQ
    records cover every event produced (or time-out); both counts and how many are missing
    (for the group with the fewest rows)."""
    stream = bench.events_stream()
    tables = [g.table_name for g in bench.project.groups.values() if g.stream.name == stream.name]
    offline = LanceOfflineStore(settings.offline_location)
    deadline = time.monotonic() + timeout_s
    while True:
        rows = {t: offline.count(t) for t in tables}
        dlq = count_records(settings.kafka, stream.dlq_topic) if stream.dlq_topic else 0
        fewest = min(rows.values(), default=0)
        if fewest + dlq >= produced or time.monotonic() > deadline:
            return {"offline_rows": rows, "dlq_events": dlq, "missing": produced - fewest - dlq}
        time.sleep(2)


def main(project_dir: Path | None, minutes: float, rate: float, sample_s: float = 30.0,
         warmup_s: float = 60.0, bad_fraction: float = BAD_FRACTION, seed: int = 3
         ) -> dict[str, Any]:
    """Run the soak; return the figures."""
    bench = open_project(project_dir)
    stream = bench.events_stream()
    data_dir = Path(tempfile.mkdtemp(prefix="fti-soak-"))
    apply(bench.project, data_dir)  # `fti up` runs an applied project only
    port = free_port()
    ports = {name: free_port() for name in SERVICES}
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTI_")} | {
        "FTI_DATA_DIR": str(data_dir), "FTI_BROKER__PORT": str(port),
        "FTI_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        **{f"FTI_METRICS__{PORTS[name]}_PORT": str(p) for name, p in ports.items()},
    }
    up = subprocess.Popen(
        [sys.executable, "-m", "fti", "up", "--project", str(bench.directory.resolve())],
        env=env, stdout=open(data_dir / "up.log", "wb"), stderr=subprocess.STDOUT)
    wait_for_broker(f"127.0.0.1:{port}", 60)
    settings = settings_in(env)
    ensure_topics(settings.kafka, settings.topics)
    ensure_topic_names(settings.kafka, bench.project.topics())
    count = int(minutes * 60 * rate)
    # Every kind of bad input the scenario makes, poison included.
    produced = Produced()
    records = bench.records(count, bad_fraction, seed)
    sender = threading.Thread(target=produce, daemon=True, args=(
        settings, records, bench.topics(), stream.name, rate),
        kwargs={"only_stream": False, "produced": produced})
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
    accounting = accounted(settings, bench, produced.events)  # before the broker stops
    up.send_signal(signal.SIGTERM)
    code = up.wait(120)
    from fti.models.registry import ModelRegistry

    registry = ModelRegistry(settings.registry_location)
    trained = {name: len(registry.versions(name)) for name in bench.project.models}
    return {
        "minutes": minutes, "rate": rate, "stream": stream.name,
        "events_produced": produced.events, "bad_events_produced": produced.bad,
        "other_records_produced": produced.others, **accounting,
        "rss_start_mb": {k: round(v[1], 1) for k, v in first.items()},
        "rss_end_mb": {k: round(v[1], 1) for k, v in last.items()},
        "rss_growth_mb": {k: round(last[k][1] - first[k][1], 1) for k in first if k in last},
        "restarts": {k: max(len(v) - 1, 0) for k, v in pids_seen.items() if v},
        "models_trained": trained, "up_exit_code": code, "samples": samples,
        "data_dir": str(data_dir),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_project_option(parser)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--sample-s", type=float, default=30.0)
    parser.add_argument("--warmup-s", type=float, default=60.0,
                        help="the RSS at start is the first sample after this")
    parser.add_argument("--bad-fraction", type=float, default=BAD_FRACTION,
                        help="share of bad events (the scenario decides their kinds)")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(main(args.project, args.minutes, args.rate, args.sample_s, args.warmup_s,
                          args.bad_fraction, args.seed)))
