"""Drift detectors on synthetic drift streams: detection delay, false alarms and misses.

Error streams: a logistic regression learns 2,000 examples of a River concept (SEA variant 0,
or Agrawal function 0), is frozen, and predicts a `ConceptDriftStream` into a new concept
(SEA variant 3, Agrawal function 2), abrupt (width 50) or gradual (width 1,000); its 0/1
errors are the input, and only increases count. Feature streams: a Gaussian whose mean moves
by 0.5 sd, at once or as a linear ramp over 1,000 values. PSI and KS windows compare with a
2,000-value pre-drift reference (errors of the same model on held-out pre-drift examples;
the pre-drift Gaussian). The drift starts at position - width / 2: a detection before it is
a false alarm, the first one after it gives the delay, none after it is a miss. Every
detector is built by `fti.models.drift.detectors.build_detector`, as the monitor builds it.

Prints one JSON line per detector and stream, then a summary line (or, with --markdown,
a table). Usage: fti bench detectors [--seeds 10] [--quick] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from river import compose, linear_model, preprocessing
from river.datasets import synth

from fti.models.drift import Debounced, Detector, DetectorConfig, build_detector

TRAIN, REFERENCE = 2000, 2000


@dataclass(frozen=True)
class Stream:
    """A synthetic stream with a known drift: `position` is the middle of the change."""

    name: str
    source: str  # "sea", "agrawal" (error input) or "gauss" (feature input)
    length: int
    position: int
    width: int

    @property
    def input(self) -> str:
        """What the detectors see: a model's 0/1 errors, or a raw feature."""
        return "feature" if self.source == "gauss" else "error"

    @property
    def drift_start(self) -> int:
        """Index of the first value of the change."""
        return self.position - self.width // 2


def streams(quick: bool) -> list[Stream]:
    """The streams of a run; --quick keeps two short ones."""
    n, pos = (3000, 1500) if quick else (10000, 5000)
    every = [
        Stream("sea_abrupt", "sea", n, pos, 50), Stream("sea_gradual", "sea", n, pos, 1000),
        Stream("agrawal_abrupt", "agrawal", n, pos, 50),
        Stream("agrawal_gradual", "agrawal", n, pos, 1000),
        Stream("mean_shift_abrupt", "gauss", n, pos, 0),
        Stream("mean_shift_gradual", "gauss", n, pos, 1000),
    ]
    return [s for s in every if s.name in ("sea_abrupt", "mean_shift_abrupt")] if quick else every


def _concept(source: str, before: bool, seed: int) -> Any:
    if source == "sea":
        return synth.SEA(variant=0 if before else 3, seed=seed)
    return synth.Agrawal(classification_function=0 if before else 2, seed=seed)


def make_stream(stream: Stream, seed: int, train: int, reference: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """(reference, live values) of one stream for one seed."""
    rng = np.random.default_rng(seed)
    if stream.source == "gauss":
        shift = np.clip((np.arange(stream.length) - stream.drift_start + 1)
                        / max(stream.width, 1), 0, 1) * 0.5
        return rng.normal(0, 1, reference), rng.normal(0, 1, stream.length) + shift
    model = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
    for x, y in _concept(stream.source, True, 4 * seed).take(train):
        model.learn_one(x, y)

    def errors(data: Iterator[tuple[dict[str, Any], bool]]) -> np.ndarray:
        return np.array([float(model.predict_one(x) != y) for x, y in data])

    ref = errors(_concept(stream.source, True, 4 * seed + 1).take(reference))
    drifting = synth.ConceptDriftStream(
        _concept(stream.source, True, 4 * seed + 2), _concept(stream.source, False, 4 * seed + 3),
        position=stream.position, width=max(stream.width, 50), seed=seed,
    )
    return ref, errors(drifting.take(stream.length))


def detectors(seed: int) -> dict[str, DetectorConfig]:
    """The detectors compared, River's default parameters unless noted."""
    return {
        "adwin": DetectorConfig(kind="adwin", params={"delta": 0.002}),
        "page_hinkley": DetectorConfig(kind="page_hinkley"),
        "kswin": DetectorConfig(kind="kswin", params={"seed": seed}),
        "psi": DetectorConfig(kind="psi", params={"window": 500, "threshold": 0.2}),
        "ks": DetectorConfig(kind="ks", params={"window": 500, "threshold": 0.001}),
    }


def build(name: str, config: DetectorConfig, stream: Stream, reference: np.ndarray
          ) -> Detector:
    """The detector under test; the error stream counts increases only."""
    direction = "increase" if stream.input == "error" else "both"
    return build_detector(config, stream.input, reference, direction)


VARIANTS: dict[str, Callable[[Detector], Detector]] = {
    "adwin+persist200": lambda d: Debounced(d, persist=200),
}


def detections(detector: Detector, values: np.ndarray) -> list[int]:
    """Indices at which `detector` signalled."""
    return [i for i, x in enumerate(values) if detector.update(x) is not None]


def summarise(stream: Stream, name: str, runs: list[list[int]]) -> dict[str, Any]:
    """One result row over all seeds of a stream."""
    start = stream.drift_start
    delays = [next(i for i in hits if i >= start) - start for hits in runs
              if any(i >= start for i in hits)]
    false_alarms = sum(1 for hits in runs for i in hits if i < start)
    return {
        "detector": name, "stream": stream.name, "input": stream.input, "seeds": len(runs),
        "drift_start": start,
        "delay_median": statistics.median(delays) if delays else None,
        "delay_mean": round(statistics.fmean(delays), 1) if delays else None,
        "missed": len(runs) - len(delays), "false_alarms": false_alarms,
        "false_alarms_per_10k": round(false_alarms / (len(runs) * start) * 10_000, 2),
    }


def run(seeds: int, quick: bool) -> list[dict[str, Any]]:
    """Every detector on every stream and seed; one row per (detector, stream)."""
    train, reference = (500, 1000) if quick else (TRAIN, REFERENCE)
    rows = []
    for stream in streams(quick):
        hits: dict[str, list[list[int]]] = {}
        for seed in range(seeds):
            ref, values = make_stream(stream, seed, train, reference)
            for name, config in detectors(seed).items():
                hits.setdefault(name, []).append(detections(build(name, config, stream, ref),
                                                            values))
            for name, wrap in VARIANTS.items():
                inner = build(name, detectors(seed)[name.split("+")[0]], stream, ref)
                hits.setdefault(name, []).append(detections(wrap(inner), values))
        rows += [summarise(stream, name, runs) for name, runs in hits.items()]
    return rows


def summary(rows: list[dict[str, Any]], wall_s: float) -> dict[str, Any]:
    """Per detector over all streams: misses, median of the per-stream median delays, and
    false alarms per 10k pre-drift values."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["detector"] for r in rows):
        mine = [r for r in rows if r["detector"] == name]
        delays = [r["delay_median"] for r in mine if r["delay_median"] is not None]
        pre = sum(r["seeds"] * r["drift_start"] for r in mine)
        out[name] = {
            "missed": sum(r["missed"] for r in mine), "runs": sum(r["seeds"] for r in mine),
            "delay_median": statistics.median(delays) if delays else None,
            "false_alarms_per_10k": round(sum(r["false_alarms"] for r in mine) / pre * 1e4, 2),
        }
    return {"summary": out, "wall_s": round(wall_s, 1)}


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def markdown(rows: list[dict[str, Any]], total: dict[str, Any]) -> str:
    """The results as Markdown tables: per stream, then the summary."""
    lines = ["| stream | input | detector | median delay | mean delay | missed | "
             "false alarms | per 10k |", "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['stream']} | {r['input']} | {r['detector']} | "
                     f"{_cell(r['delay_median'])} | {_cell(r['delay_mean'])} | "
                     f"{r['missed']}/{r['seeds']} | {r['false_alarms']} | "
                     f"{r['false_alarms_per_10k']} |")
    lines += ["", "| detector | missed | median delay | false alarms per 10k |",
              "| --- | ---: | ---: | ---: |"]
    for name, s in total["summary"].items():
        lines.append(f"| {name} | {s['missed']}/{s['runs']} | {_cell(s['delay_median'])} | "
                     f"{s['false_alarms_per_10k']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=None, help="seeds per stream (10; quick 2)")
    parser.add_argument("--quick", action="store_true", help="two short streams, 2 seeds")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = parser.parse_args(argv)
    seeds = args.seeds or (2 if args.quick else 10)
    started = time.perf_counter()
    rows = run(seeds, args.quick)
    total = summary(rows, time.perf_counter() - started)
    if args.markdown:
        print(markdown(rows, total))
    else:
        for row in rows:
            print(json.dumps(row))
        print(json.dumps(total))
    return 0


if __name__ == "__main__":
    sys.exit(main())
