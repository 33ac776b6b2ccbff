"""fti's feature engine against Quix Streams doing the same job, on one broker and topic.

The project (`--project DIR`, e.g. `examples/fraud`) and its scenario: the events of the
stream its first served model scores (else the first stream feeding a group), `--bad-fraction`
of them invalid, produced once to the stream's topic on a fresh embedded broker. Then, each
reading that very topic from its start:
- `raw`: a bare confluent-kafka consumer plus `json.loads` (the limit, as in
  `fti bench feature-ingest`);
- `fti`: `fti materialize` on the project (`fti.bench.feature_ingest.pipeline_rate`), timed
  from the flow's start (its start-up, under a second, included) until each group's offline
  table holds every valid event and the DLQ every invalid one. It does more than Quix is asked
  to: the group's other aggregations (`fti_only_features`; on the fraud example the 24 h
  distinct count and the time since previous), its transformations, the LanceDB offline
  table, the DLQ;
- `quix`: Quix Streams 3.28 (`bench/peer/quix_job.py`, in its own venv `.venv-peer`, made by
  `make peer-venv`) doing the job of the stream's group that is keyed by the message key: the
  same validation, built from the stream's definitions (invalid events dropped); per key a
  sliding window by event time for each of the group's window lengths (1 h and 24 h on the
  fraud example) with its count, sum and mean aggregations; a SQLite upsert of the latest
  features per key at each checkpoint. Timed **from its first consumed message** to the end of
  its run: the group join before it (~3 s on the embedded broker) is left out. Run with
  changelog topics on (Quix's default) and off.

Quix's long sliding windows are what cost it most (each event updates every stored window it
falls in: ~24 per event for 24 h on the fraud example, ~2.4 for 1 h), so it also runs with the
shortest window only (`--windows`).

Then the answers are compared entity by entity: Quix's latest row against fti's online store,
and each against what its own window definition gives from the produced events. The two
windows differ only at their far edge: Quix's is exact (`[t - w, t]`), fti's starts at a
bucket boundary (`w/60` buckets, `fti.features.project.engine`), so an entity differs only
when one of its events falls between the two starts.

Prints human lines, then one JSON line (`quix_eps` and its ratios: the first Quix run, all
windows with changelog on; every run in `quix_runs`).
Usage: fti bench peer-quix --project DIR [--events 200000] [--windows all|shortest|both]
                           [--changelog on|off|both] [--profile DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from fti.bench.feature_ingest import pipeline_rate, raw_rate
from fti.bench.projects import (
    BenchProject,
    add_project_option,
    open_project,
    prepare_broker,
    produce,
)
from fti.features.project.declare import FeatureGroup
from fti.features.project.decode import Event, StreamDecoder
from fti.features.project.engine import BUCKETS_PER_WINDOW
from fti.infra.embedded_broker import EmbeddedBroker, free_port
from fti.ops.scenario import DemoRecord
from fti.settings import (
    BrokerSettings,
    KafkaSettings,
    MetricsSettings,
    OnlineStoreSettings,
    Settings,
)

REPO = Path(__file__).resolve().parents[1]
#: The Quix side: a standalone script (no fti imports), run by the peer venv's Python.
QUIX_JOB = Path(__file__).resolve().parent / "peer" / "quix_job.py"
PEER_PYTHON = REPO / ".venv-peer" / "bin" / "python"
CHANGELOG_MODES = ("on", "off", "both")
#: The aggregations the Quix side computes (the others are fti's alone).
QUIX_FUNCTIONS = ("count", "sum", "mean")


@dataclass
class Judged:
    """The measured stream's events as fti's decoder judges them: how many, the invalid ones,
    and per entity its valid events (event time in epoch seconds, the values of the fields
    the windows aggregate)."""

    events: int
    invalid: int
    valid_by_entity: dict[str, list[tuple[float, dict[str, float]]]]


def judge(records: list[DemoRecord], group: FeatureGroup) -> Judged:
    """Decode each record of the group's stream with fti's own decoder, so the check after
    each Quix run knows every valid event."""
    decoder, now = StreamDecoder(group.stream), time.time()
    fields = sorted({a.field for a in group.aggregations if a.field and a.window is not None})
    by_entity: dict[str, list[tuple[float, dict[str, float]]]] = defaultdict(list)
    invalid = 0
    for record in records:
        event = decoder.decode(record.value, now)
        if isinstance(event, Event):
            by_entity[str(event.values[group.entity])].append(
                (event.time, {f: event.values[f] for f in fields}))
        else:
            invalid += 1
    return Judged(len(records), invalid, dict(by_entity))


def measured_group(bench: BenchProject) -> tuple[FeatureGroup, list[FeatureGroup]]:
    """The group Quix reproduces: the first (by name) of the measured stream's groups with
    windowed count, sum or mean aggregations, keyed like the stream's messages (Quix groups
    by message key); and all the stream's groups (fti materializes each)."""
    stream = bench.events_stream()
    groups = sorted((g for g in bench.project.groups.values() if g.stream.name == stream.name),
                    key=lambda g: g.name)
    for group in groups:
        if group.entity == stream.key and any(
                a.window is not None and a.function in QUIX_FUNCTIONS for a in group.aggregations):
            return group, groups
    raise SystemExit(f"--project {bench.directory}: stream {stream.name} feeds no group keyed by "
                     f"its message key ({stream.key}) with a windowed count, sum or mean")


def job_spec(group: FeatureGroup, kafka: KafkaSettings) -> dict[str, Any]:
    """The job the Quix side runs, from the project's own definitions; its consumer gets the
    tuning fti's consumers have for the embedded broker (short session timeout: a group join
    then takes ~3 s instead of ~23 s)."""
    assert isinstance(group.allowed_lateness, timedelta)
    return {
        "group": group.name,
        "stream": group.stream.spec(),
        "aggregations": [a.spec() for a in group.aggregations],
        "allowed_lateness_s": group.allowed_lateness.total_seconds(),
        "consumer": {
            "session.timeout.ms": kafka.session_timeout_ms,
            "heartbeat.interval.ms": max(kafka.session_timeout_ms // 3, 500),
            "fetch.wait.max.ms": kafka.fetch_wait_max_ms,
        },
    }


@dataclass(frozen=True)
class Variant:
    """One run of the Quix side: which window lengths (seconds) and changelog on or off."""

    windows: tuple[float, ...]
    changelog: bool

    @property
    def name(self) -> str:
        lengths = "+".join(_length(w) for w in self.windows)
        return f"{lengths}-{'changelog' if self.changelog else 'nochangelog'}"


def _length(seconds: float) -> str:
    """A window length for people.

    >>> _length(3600.0), _length(86400.0), _length(90.0)
    ('1h', '24h', '90s')
    """
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def run_quix(peer_python: Path, job: Path, broker: str, topic: str, events: int,
             variant: Variant, workdir: Path, profile: Path | None = None) -> dict[str, Any]:
    """Run the Quix side once in its own process; return its figures and its SQLite file."""
    db = workdir / f"quix-{variant.name}.db"
    command = [
        str(peer_python), str(QUIX_JOB), "--job", str(job), "--broker", broker,
        "--topic", topic, "--events", str(events), "--db", str(db),
        "--state-dir", str(workdir / f"state-{variant.name}"),
        "--group", f"peer-quix-{variant.name}", "--windows", *map(str, variant.windows),
    ]
    if variant.changelog:
        command.append("--changelog")
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        command += ["--profile", str(profile / f"quix-{variant.name}.txt")]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    if done.returncode != 0:
        raise SystemExit(f"the Quix side failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(time.perf_counter() - start, 3)
    result["db"] = str(db)
    return result


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


def expected(events: list[tuple[float, dict[str, float]]], agg: dict[str, Any],
             exact: bool) -> float | int | None:
    """What `agg` (a count, sum or mean) is over an entity's valid events for its newest one at
    `t`: over `[t - w, t]` (`exact`, Quix's sliding window), else over the 60 buckets of
    `w/60` up to `t`'s own (fti's window).

    >>> events = [(0.0, {"x": 1.0}), (3000.0, {"x": 2.0}), (3630.0, {"x": 4.0})]
    >>> expected(events, {"function": "sum", "field": "x", "window": 3600.0}, exact=True)
    6.0
    >>> expected(events, {"function": "sum", "field": "x", "window": 3600.0}, exact=False)
    6.0
    >>> expected(events, {"function": "count", "field": None, "window": 3600.0}, exact=False)
    2
    >>> expected([(40.0, {"x": 1.0}), *events[1:]], {"function": "count", "field": None,
    ...                                            "window": 3600.0}, exact=True)
    3
    >>> expected([(40.0, {"x": 1.0}), *events[1:]], {"function": "count", "field": None,
    ...                                            "window": 3600.0}, exact=False)
    2
    """
    t, w = max(time for time, _ in events), agg["window"]
    if exact:
        start = t - w
    else:
        bucket_s = w / BUCKETS_PER_WINDOW
        start = (math.floor(t / bucket_s) - BUCKETS_PER_WINDOW + 1) * bucket_s
    inside = [values for time, values in events if start <= time <= t]
    if agg["function"] == "count":
        return len(inside)
    total = sum(values[agg["field"]] for values in inside)
    if agg["function"] == "sum":
        return total
    return total / len(inside) if inside else None


def compare(fti_online: Path, table: str, quix_db: Path, aggregations: list[dict[str, Any]],
            judged: Judged) -> dict[str, int]:
    """Quix's latest row of each entity against fti's online features of it, and each
    against what its own window definition gives from the produced events.

    `same`: entities whose features are equal on both sides. The two windows differ only at their
    far edge (an entity differs when an event lies between Quix's `t - w` and fti's first bucket),
    so the other counts say whether each side is right by its own definition:
    `quix_as_defined` (sliding window `[t - w, t]`) and `fti_as_defined` (60 buckets).
    """
    features = [a["name"] for a in aggregations]
    with sqlite3.connect(quix_db) as conn:
        columns = ", ".join(features)
        quix = {key: dict(zip(features, values, strict=True)) for key, *values in
                conn.execute(f"SELECT key, {columns} FROM latest_features")}
    prefix = f"{table}:"
    with sqlite3.connect(fti_online) as conn:
        fti = {entity.removeprefix(prefix): json.loads(text) for entity, text in
               conn.execute("SELECT entity, features FROM online_features WHERE entity LIKE ?",
                            (prefix + "%",))}
    same = quix_right = fti_right = 0
    for entity, events in judged.valid_by_entity.items():
        ours, theirs = fti.get(entity, {}), quix.get(entity, {})
        same += bool(ours and theirs) and all(_close(ours.get(f), theirs.get(f))
                                              for f in features)
        quix_right += all(_close(theirs.get(a["name"]), expected(events, a, exact=True))
                          for a in aggregations)
        fti_right += all(_close(ours.get(a["name"]), expected(events, a, exact=False))
                         for a in aggregations)
    return {"entities": len(judged.valid_by_entity), "quix_rows": len(quix), "fti_rows": len(fti),
            "same": same, "quix_as_defined": quix_right, "fti_as_defined": fti_right}


def _load() -> float:
    """The machine's 1-minute load average (other work on the machine skews the rates)."""
    return round(os.getloadavg()[0], 2)


def variants(windows: list[float], which: str, changelog: str) -> list[Variant]:
    """The Quix runs asked for, the headline first: all windows with changelog on."""
    lengths = {"all": [tuple(windows)], "shortest": [(min(windows),)],
               "both": [tuple(windows), (min(windows),)]}[which]
    modes = {"on": [True], "off": [False], "both": [True, False]}[changelog]
    return [Variant(w, on) for w in dict.fromkeys(lengths) for on in modes]


def main(events: int, project_dir: Path | None, windows: str = "both", changelog: str = "both",
         peer_python: Path = PEER_PYTHON, profile: Path | None = None, bad_fraction: float = 0.01,
         seed: int = 7, say: Any = print) -> dict[str, object]:
    """Produce once, measure raw, fti and Quix on the same topic; return the figures."""
    if not peer_python.exists():
        raise SystemExit(f"no peer venv at {peer_python}: run `make peer-venv`")
    if not QUIX_JOB.exists():  # not shipped as a module: it lives in the source tree only
        raise SystemExit(f"no {QUIX_JOB}: run from a source checkout (pip install -e .)")
    bench = open_project(project_dir)
    workdir = Path(tempfile.mkdtemp(prefix="fti-peer-quix-"))
    try:
        return _measure(bench, events, windows, changelog, peer_python, profile, bad_fraction,
                        seed, say, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _measure(bench: BenchProject, events: int, windows: str, changelog: str,
             peer_python: Path, profile: Path | None, bad_fraction: float, seed: int, say: Any,
             workdir: Path) -> dict[str, object]:
    group, groups = measured_group(bench)
    stream = group.stream
    with EmbeddedBroker(BrokerSettings(port=free_port())) as broker:
        settings = Settings(
            data_dir=workdir / "fti",
            kafka=KafkaSettings(bootstrap_servers=broker.bootstrap_servers),
            metrics=MetricsSettings(features_port=0),
            online=OnlineStoreSettings(backend="sqlite"),  # the check reads its SQLite file
        )
        spec = job_spec(group, settings.kafka)
        job = workdir / "job.json"
        job.write_text(json.dumps(spec))
        windowed = [a for a in spec["aggregations"]
                    if a["window"] is not None and a["function"] in QUIX_FUNCTIONS]
        runs = variants(sorted({a["window"] for a in windowed}), windows, changelog)
        prepare_broker(settings, bench.project)
        # Only this stream's records: every side reads the very same messages.
        records = [r for r in bench.records(events, bad_fraction, seed) if r.stream == stream.name]
        judged = judge(records, group)
        say(f"producing {len(records):,} events of {stream.name!r} to {stream.topic!r} on "
            f"{broker.bootstrap_servers}")
        sent = produce(settings, records, bench.topics(), stream.name)
        raw = raw_rate(settings, stream.topic, sent.events)
        say(f"raw consume + json.loads: {raw:,.0f} ev/s (load {_load():.1f})")
        cpu = time.process_time()
        fti_eps, rows, dead = pipeline_rate(settings, bench.project, groups, stream.dlq_topic,
                                            sent.events, sent.bad)
        fti_cpu_us = (time.process_time() - cpu) / sent.events * 1e6
        fti_load = _load()
        say(f"fti materialize: {fti_eps:,.0f} ev/s from its start, {fti_cpu_us:,.0f} µs CPU "
            f"per event (load {fti_load:.1f}; offline rows {rows}, {dead:,} to the DLQ)")
        results = []
        for variant in runs:
            q = run_quix(peer_python, job, broker.bootstrap_servers, stream.topic,
                         sent.events, variant, workdir, profile)
            check = compare(settings.online_path, group.table_name, Path(q["db"]),
                            [a for a in windowed if a["name"] in q["features"]], judged)
            results.append({
                "windows": [_length(w) for w in variant.windows],
                "changelog": variant.changelog,
                "eps": q["events_per_s"],
                "fti_over_quix": round(fti_eps / q["events_per_s"], 3),
                "quix_over_raw": round(q["events_per_s"] / raw, 3),
                "join_s": q["join_s"],
                "elapsed_s": q["elapsed_s"],
                "cpu_us_per_event": round(q["cpu_s"] / sent.events * 1e6),
                "load_1m": _load(),
                "valid": q["valid"],
                "skipped": q["skipped"],
                "check": check,
            })
            say(f"quix {variant.name}: {q['events_per_s']:,} ev/s from its first message "
                f"({q['elapsed_s']:.1f} s; the {q['join_s']:.1f} s group join before it left "
                f"out), {results[-1]['cpu_us_per_event']:,} µs CPU per event (load "
                f"{results[-1]['load_1m']:.1f}); fti / quix {fti_eps / q['events_per_s']:.2f}; "
                f"of {check['entities']} entities, "
                f"{check['same']} equal to fti's (the rest differ at the window's far edge), "
                f"{check['quix_as_defined']} right by Quix's window, "
                f"{check['fti_as_defined']} of fti's right by its own")
    head = results[0]
    return {
        "benchmark": "peer-quix",
        "events": sent.events,
        "invalid": judged.invalid,
        "stream": stream.name,
        "group": group.name,
        "fti_eps": round(fti_eps),
        "quix_eps": head["eps"],
        "raw_eps": round(raw),
        "fti_over_quix": head["fti_over_quix"],
        "fti_over_raw": round(fti_eps / raw, 3),
        "fti_cpu_us_per_event": round(fti_cpu_us),
        "fti_load_1m": fti_load,
        "quix_over_raw": head["quix_over_raw"],
        "quix_changelog": head["changelog"],
        "quix_windows": head["windows"],
        "fti_only_features": head["skipped"],
        "quix_timed_from": "first message (group join excluded)",
        "fti_timed_from": "flow start (start-up included)",
        "quix_runs": results,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_project_option(parser)
    parser.add_argument("--events", type=int, default=200000)
    parser.add_argument("--windows", choices=("all", "shortest", "both"), default="both",
                        help="Quix computes all the group's window lengths (as fti does), the "
                             "shortest only, or both runs (default)")
    parser.add_argument("--changelog", choices=CHANGELOG_MODES, default="both",
                        help="Quix's changelog topics: on (its default), off, or both runs "
                             "(default). quix_eps is the first run: all windows, changelog on")
    parser.add_argument("--peer-python", type=Path, default=PEER_PYTHON,
                        help="the Python of the peer venv (default .venv-peer, `make peer-venv`)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="write a cProfile summary of each Quix run into DIR (slows it)")
    parser.add_argument("--bad-fraction", type=float, default=0.01,
                        help="share of invalid events (the scenario decides their kinds)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    outcome = main(args.events, args.project, args.windows, args.changelog, args.peer_python,
                   args.profile, args.bad_fraction, args.seed)
    sys.stdout.flush()
    print(json.dumps(outcome))
