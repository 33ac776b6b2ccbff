"""Online-store batched lookup latency against the raw client, measured in the same run.

Fills the store with `entities` realistic rows (12 features, a 30-entry window), then times
`rounds` lookups of `keys` random entities, interleaved: `fti` is our `get_many`; `raw` is the
bare client on the same data (sqlite3 `SELECT … WHERE entity IN (…)` of the same columns, or
redis-py MGET of the same keys), with no decoding. `fti_decoded` also reads every row's
features and window (what scoring pays). `overhead` = fti p99 / raw p99 (`overhead_p50` the
same at p50). Prints one JSON line.
Usage: python bench/online_lookup.py --backend sqlite|redis [--keys 100 --entities 10000
--rounds 2000 --redis-url URL]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from fti.connectors.online import OnlineRow, OnlineStore, RedisOnlineStore, SqliteOnlineStore
from fti.settings import OnlineStoreSettings

FEATURES = 12
WINDOW = 30


def make_row(entity: str, rng: random.Random, now: float) -> OnlineRow:
    """A row shaped like the feature flow's: 12 features and a 30-entry window."""
    window = []
    for i in range(WINDOW):
        ts = now - (WINDOW - i) * rng.uniform(60, 2400)
        window.append([ts, round(rng.uniform(1, 500), 2), rng.choice(["DE", "FR", "NL"]),
                       f"ev-{uuid.UUID(int=rng.getrandbits(128)).hex}"])
    features = {f"feature_{k:02d}": rng.uniform(0, 1000) for k in range(FEATURES)}
    return OnlineRow(entity, window[-1][0], window[-1][3], features, window)


def fill(store: OnlineStore, entities: list[str], seed: int = 7) -> None:
    """Write one row per entity, in batches of 500."""
    rng, now = random.Random(seed), time.time()
    for start in range(0, len(entities), 500):
        store.upsert([make_row(e, rng, now) for e in entities[start : start + 500]])


def percentiles_us(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 of `samples` (seconds), in microseconds."""
    cuts = statistics.quantiles(samples, n=100)
    return round(cuts[49] * 1e6, 1), round(cuts[98] * 1e6, 1)


def _decoded(store: OnlineStore) -> Callable[[list[str]], Any]:
    def read(batch: list[str]) -> int:
        rows = store.get_many(batch)
        return sum(len(r.features) + len(r.window) for r in rows.values())

    return read


def measure(
    readers: dict[str, tuple[Callable[[list[str]], Any], dict[str, str]]],
    entities: list[str],
    keys: int,
    rounds: int,
) -> dict[str, list[float]]:
    """Latencies per reader over the same random batches, interleaved round by round.

    Each reader comes with the names it is given per entity (the raw Redis client gets its
    keys ready-made, outside the timed region).
    """
    rng = random.Random(11)
    samples: dict[str, list[float]] = {name: [] for name in readers}
    for i in range(rounds + rounds // 10):  # the first tenth warms up and is dropped
        batch = rng.sample(entities, keys)
        for name, (read, names) in readers.items():
            arg = [names[e] for e in batch]
            start = time.perf_counter()
            read(arg)
            elapsed = time.perf_counter() - start
            if i >= rounds // 10:
                samples[name].append(elapsed)
    return samples


def _sqlite_readers(path: Path) -> tuple[OnlineStore, Callable[[list[str]], Any]]:
    store = SqliteOnlineStore(path)
    conn = sqlite3.connect(path, isolation_level=None)
    # The columns an OnlineRow is read from: every column of the store's table but its own
    # bookkeeping.
    columns = ", ".join(row[1] for row in conn.execute("PRAGMA table_info(online_features)")
                        if row[1] != "updated_at")

    def raw(batch: list[str]) -> list[Any]:
        marks = ",".join("?" * len(batch))
        sql = f"SELECT {columns} FROM online_features WHERE entity IN ({marks})"
        return conn.execute(sql, batch).fetchall()

    return store, raw


def _redis_readers(url: str, prefix: str) -> tuple[OnlineStore, Callable[[list[str]], Any]]:
    store = RedisOnlineStore(url, prefix)
    client = redis.Redis.from_url(url)

    def raw(batch: list[str]) -> list[Any]:
        return client.mget(batch)

    return store, raw


def main(
    backend: str,
    keys: int = 100,
    entities: int = 10000,
    rounds: int = 2000,
    redis_url: str = OnlineStoreSettings().redis_url,
) -> dict[str, Any]:
    """Fill a fresh store of `backend`, time both readers; return the figures."""
    names = [f"entity-{i:07d}" for i in range(entities)]
    prefix = f"bench-{uuid.uuid4().hex}"
    if backend == "sqlite":
        store, raw = _sqlite_readers(Path(tempfile.mkdtemp()) / "online.db")
        raw_names = {n: n for n in names}
    else:
        store, raw = _redis_readers(redis_url, prefix)
        raw_names = {n: f"{prefix}:online:{n}" for n in names}  # raw gets ready-made keys
    try:
        fill(store, names)
        same = {n: n for n in names}
        readers = {"raw": (raw, raw_names), "fti": (store.get_many, same),
                   "fti_decoded": (_decoded(store), same)}
        samples = measure(readers, names, keys, rounds)
    finally:
        if isinstance(store, RedisOnlineStore):
            store.clear()
        store.close()
    out: dict[str, Any] = {"backend": backend, "entities": entities, "keys": keys,
                           "rounds": rounds}
    for name, values in samples.items():
        out[f"{name}_p50_us"], out[f"{name}_p99_us"] = percentiles_us(values)
    out["overhead"] = round(out["fti_p99_us"] / out["raw_p99_us"], 3)
    out["overhead_p50"] = round(out["fti_p50_us"] / out["raw_p50_us"], 3)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--entities", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--redis-url", default=OnlineStoreSettings().redis_url)
    args = parser.parse_args()
    print(json.dumps(main(args.backend, args.keys, args.entities, args.rounds, args.redis_url)))
