"""The Quix Streams side of `fti bench peer-quix`: the feature engine's job done with Quix.

Standalone: runs in its own venv (`make peer-venv`: quixstreams 3.28 needs confluent-kafka
< 2.13) and imports nothing of fti. This folder has no `__init__.py`, so it is not part of the
`fti.bench` package. `fti.bench.peer_quix` writes the job file from the project's
definitions (the stream's fields and rules, the group's aggregations) and starts this script.

The job, per message key (the group's entity: the card on the fraud example):
- decode and validate each value by the stream's rules, as fti's `StreamDecoder` does
  (orjson; required fields, types, min/max, allowed values, event time at most
  `max_future_skew` ahead); invalid events are dropped (counted, not sent anywhere);
- event time = the stream's `event_time` field (`set_timestamp`);
- per window length, a Quix sliding window (`[t - w, t]`, grace = the group's allowed
  lateness) with the group's `count`, `sum` and `mean` aggregations (others are listed as
  skipped); `.current()` emits each event's window;
- a batching sink upserts the latest features per key into SQLite at each checkpoint.

It stops once the message at offset `events - 1` is processed (the app's final checkpoint
flushes the sink) and prints one JSON line: messages consumed, valid events, seconds from
the application's start to its first message (group join, assignment, state set-up) and
from the first message to the end of the run, and the CPU seconds of the process (all its
threads) over the latter.

Usage: quix_job.py --job JOB.json --broker HOST:PORT --topic T --events N --db OUT.db
                   --state-dir DIR [--group G] [--changelog] [--windows SECONDS ...]
                   [--profile OUT.txt] [--loglevel DEBUG]
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from quixstreams import Application, message_context
from quixstreams.dataframe.windows import Count, Mean, Sum
from quixstreams.sinks import BatchingSink, SinkBatch

MAX_EVENT_BYTES = 1 << 20
MAX_STRING_CHARS = 10_000
MAX_EPOCH_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
AGGREGATORS = {"count": lambda field: Count(), "sum": Sum, "mean": Mean}


class Invalid(Exception):
    """An event the stream's rules reject."""


def _utc_seconds(value: Any) -> float:
    """RFC 3339 text or epoch milliseconds → epoch seconds (fti's `to_utc_datetime`)."""
    if isinstance(value, bool):
        raise Invalid("boolean time")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 <= value <= MAX_EPOCH_MS:
            raise Invalid("epoch milliseconds out of range")
        return datetime.fromtimestamp(value / 1000, tz=UTC).timestamp()
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as ex:
            raise Invalid("not RFC 3339") from ex
        if parsed.tzinfo is None:
            raise Invalid("no offset")
        try:
            return parsed.astimezone(UTC).timestamp()
        except OverflowError as ex:
            raise Invalid("time out of range") from ex
    raise Invalid("not a time")


def _string(value: Any) -> Any:
    if not isinstance(value, str) or len(value) > MAX_STRING_CHARS:
        raise Invalid("string")
    return value


def _int(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise Invalid("int")
    if abs(value) >= 2**63:
        raise Invalid("int range")
    return value


def _float(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid("float")
    out = float(value)
    if out in (math.inf, -math.inf):
        raise Invalid("float range")
    return out


def _bool(value: Any) -> Any:
    if not isinstance(value, bool):
        raise Invalid("bool")
    return value


CONVERT = {"string": _string, "int": _int, "float": _float, "bool": _bool,
           "timestamp": _utc_seconds}


class Decoder:
    """Validates raw values by a stream spec (`Stream.spec()` of fti's definitions)."""

    def __init__(self, stream: dict[str, Any]) -> None:
        self.fields = [(f["name"], CONVERT[f["type"]], f["required"], f["min"], f["max"],
                        None if f["values"] is None else set(f["values"]))
                       for f in stream["fields"]]
        self.event_time = stream["event_time"]
        self.max_skew_s = stream["max_future_skew"]

    def decode(self, raw: bytes | None, now: float) -> dict[str, Any] | None:
        """The typed values, with `_ts_ms` (event time, epoch ms); None when invalid."""
        try:
            if not raw or len(raw) > MAX_EVENT_BYTES:
                return None
            data = orjson.loads(raw)
            if not isinstance(data, dict):
                return None
            values: dict[str, Any] = {}
            for name, convert, required, low, high, allowed in self.fields:
                value = data.get(name)
                if value is None:
                    if required:
                        return None
                    values[name] = None
                    continue
                value = convert(value)
                if low is not None and value < low or high is not None and value > high:
                    return None
                if allowed is not None and value not in allowed:
                    return None
                values[name] = value
        except (orjson.JSONDecodeError, Invalid, ValueError, OverflowError, TypeError):
            return None
        t = values[self.event_time]
        if t is None or self.max_skew_s is not None and t > now + self.max_skew_s:
            return None
        values["_ts_ms"] = round(t * 1000)
        return values


class LatestSqliteSink(BatchingSink):
    """Upserts the newest emitted features of each key into one SQLite table, per batch."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        super().__init__()
        self.path, self.columns = path, columns
        self.rows_written = 0
        self.last_write_end = 0.0
        self._conn: sqlite3.Connection | None = None

    def setup(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        cols = ", ".join(f"{c} REAL" for c in self.columns)
        conn.execute(f"CREATE TABLE IF NOT EXISTS latest_features (key TEXT PRIMARY KEY, "
                     f"event_time REAL NOT NULL, {cols})")
        names = ", ".join(self.columns)
        marks = ", ".join("?" for _ in self.columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in ["event_time", *self.columns])
        self._upsert = (f"INSERT INTO latest_features (key, event_time, {names}) "
                        f"VALUES (?, ?, {marks}) ON CONFLICT(key) DO UPDATE SET {updates} "
                        "WHERE excluded.event_time >= latest_features.event_time")
        self._conn = conn

    def write(self, batch: SinkBatch) -> None:
        latest: dict[Any, dict[str, Any]] = {}
        for item in batch:  # every window's row of an event; the last event of a key wins
            row = latest.get(item.key)
            if row is None or row["end"] < item.value["end"]:
                latest[item.key] = row = {"end": item.value["end"]}
            row.update(item.value)
        params = [(key, row["end"] / 1000, *(row.get(c) for c in self.columns))
                  for key, row in latest.items()]
        assert self._conn is not None
        self._conn.execute("BEGIN")
        self._conn.executemany(self._upsert, params)
        self._conn.execute("COMMIT")
        self.rows_written += len(params)
        self.last_write_end = time.perf_counter()


class Progress:
    """Decodes every message, notes the first one's time, and stops the app after the last."""

    def __init__(self, app: Application, decoder: Decoder, events: int) -> None:
        self.app, self.decoder, self.events = app, decoder, events
        self.consumed = self.valid = 0
        self.first: float | None = None
        self.first_cpu = 0.0

    def __call__(self, raw: bytes | None) -> dict[str, Any] | None:
        if self.first is None:
            self.first, self.first_cpu = time.perf_counter(), time.process_time()
        self.consumed += 1
        values = self.decoder.decode(raw, time.time())
        self.valid += values is not None
        if message_context().offset >= self.events - 1:
            self.app.stop()  # the loop ends after this message; the final checkpoint flushes
        return values


def windows_of(aggregations: list[dict[str, Any]]
               ) -> tuple[dict[float, dict[str, Any]], list[str]]:
    """Window length (s) → {feature name: Quix aggregator}; and the names left out."""
    windows: dict[float, dict[str, Any]] = {}
    skipped = []
    for agg in aggregations:
        make = AGGREGATORS.get(agg["function"])
        if make is None or agg["window"] is None:
            skipped.append(agg["name"])
            continue
        windows.setdefault(agg["window"], {})[agg["name"]] = make(agg["field"])
    return windows, skipped


def run(args: argparse.Namespace) -> dict[str, Any]:
    job = json.loads(Path(args.job).read_text())
    windows, skipped = windows_of(job["aggregations"])
    if args.windows:
        windows = {w: a for w, a in windows.items() if w in args.windows}
    app = Application(
        broker_address=args.broker, consumer_group=args.group, auto_offset_reset="earliest",
        state_dir=args.state_dir, use_changelog_topics=args.changelog, loglevel=args.loglevel,
        consumer_extra_config=job.get("consumer") or None,
    )
    topic = app.topic(args.topic, value_deserializer="bytes", key_deserializer="str")
    progress = Progress(app, Decoder(job["stream"]), args.events)
    sdf = app.dataframe(topic).apply(progress).filter(lambda value: value is not None)
    sdf = sdf.set_timestamp(lambda value, key, timestamp, headers: value["_ts_ms"])
    grace_ms = round(job["allowed_lateness_s"] * 1000)
    branches = [
        sdf.sliding_window(duration_ms=round(seconds * 1000), grace_ms=grace_ms,
                           name=f"window_{seconds:g}s").agg(**aggs).current()
        for seconds, aggs in sorted(windows.items())
    ]
    out = branches[0]
    for branch in branches[1:]:
        out = out.concat(branch)
    columns = [name for _, aggs in sorted(windows.items()) for name in aggs]
    sink = LatestSqliteSink(Path(args.db), columns)
    out.sink(sink)
    started = time.perf_counter()
    app.run()
    ended, cpu = time.perf_counter(), time.process_time()
    first = progress.first if progress.first is not None else ended
    return {
        "consumed": progress.consumed, "valid": progress.valid,
        "changelog": args.changelog, "features": columns, "skipped": skipped,
        "join_s": round(first - started, 3),
        "elapsed_s": round(ended - first, 3),
        "cpu_s": round(cpu - progress.first_cpu, 3),
        "to_last_write_s": round(sink.last_write_end - first, 3),
        "events_per_s": round(progress.consumed / (ended - first)) if ended > first else 0,
        "rows_written": sink.rows_written,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", type=Path, required=True, help="job spec (JSON)")
    parser.add_argument("--broker", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--events", type=int, required=True,
                        help="messages on the topic; stop after the last")
    parser.add_argument("--db", required=True, help="SQLite file for the latest features")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--group", default="peer-quix")
    parser.add_argument("--changelog", action="store_true", help="changelog topics on")
    parser.add_argument("--windows", type=float, nargs="*",
                        help="only these window lengths (seconds)")
    parser.add_argument("--profile", type=Path, help="write a cProfile summary here")
    parser.add_argument("--loglevel", default="WARNING")
    args = parser.parse_args()
    if args.profile is None:
        result = run(args)
    else:
        import cProfile
        import io
        import pstats

        profiler = cProfile.Profile()
        result = profiler.runcall(run, args)
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(60)
        args.profile.write_text(text.getvalue())
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
