"""The online store contract, run against every backend (SQLite file, real Redis)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from fti.connectors.online import (
    Lookup,
    OnlineRow,
    OnlineStore,
    OnlineStoreError,
    RedisOnlineStore,
    SqliteOnlineStore,
    freshness_seconds,
    open_online_store,
)
from fti.errors import FtiError
from fti.settings import OnlineStoreSettings, Settings

MakeStore = Callable[..., OnlineStore]


def _row(entity: str, event_time: float, event_id: str = "", amount: float = 1.0) -> OnlineRow:
    event_id = event_id or f"{entity}@{event_time!r}"
    window = [[event_time - 60.0, 0.5, "FR", "prev"], [event_time, amount, "DE", event_id]]
    return OnlineRow(entity, event_time, event_id, {"amount": amount, "tx_count_1h": 2.0}, window)


@pytest.fixture(params=["sqlite", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeStore]:
    """Builds stores on one backend location (a SQLite file / a uuid Redis prefix)."""
    prefix = f"test-{uuid.uuid4().hex}"
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    made: list[OnlineStore] = []

    def make(ttl_s: float | None = None) -> OnlineStore:
        if request.param == "sqlite":
            store: OnlineStore = SqliteOnlineStore(tmp_path / "online.db", ttl_s=ttl_s)
        else:
            store = RedisOnlineStore(redis_url, prefix, ttl_s=ttl_s)
        made.append(store)
        return store

    yield make
    if request.param == "redis":
        RedisOnlineStore(redis_url, prefix).clear()
    for store in made:
        store.close()


@pytest.fixture
def store(make_store: MakeStore) -> OnlineStore:
    """One store without TTL."""
    return make_store()


def test_upsert_then_get_many_returns_rows_as_written(store: OnlineStore) -> None:
    assert isinstance(store, OnlineStore)
    rows = [_row("c1", 10.0, "t1", 2.5), _row("c:2/é", 20.25, "t\t2 \"é\" \\", 7.0)]
    store.upsert(rows)
    assert store.get_many(["c1", "c:2/é"]) == {"c1": rows[0], "c:2/é": rows[1]}


def test_older_never_overwrites_newer_across_batches(store: OnlineStore) -> None:
    store.upsert([_row("c1", 5.0, "t5")])
    store.upsert([_row("c1", 9.0, "t9")])
    store.upsert([_row("c1", 7.0, "t7")])
    assert store.get_many(["c1"])["c1"] == _row("c1", 9.0, "t9")


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_newest_wins_within_one_batch_in_either_order(
    store: OnlineStore, order: tuple[int, int]
) -> None:
    rows = [_row("c1", 1.0, "old", 1.0), _row("c1", 2.0, "new", 2.0)]
    store.upsert([rows[i] for i in order])
    assert store.get_many(["c1"])["c1"] == rows[1]
    assert store.count() == 1


def test_equal_event_time_overwrites(store: OnlineStore) -> None:
    store.upsert([_row("c1", 3.0, "first", 1.0)])
    store.upsert([_row("c1", 3.0, "second", 2.0)])
    assert store.get_many(["c1"])["c1"] == _row("c1", 3.0, "second", 2.0)


def test_missing_keys_read_as_missing(store: OnlineStore) -> None:
    store.upsert([_row("c1", 1.0)])
    assert set(store.get_many(["nope", "c1"])) == {"c1"}
    assert store.get_many([]) == {} and store.lookup([]) == {}
    found = store.lookup(["nope", "c1"], now=4.0)
    assert found["nope"] == Lookup("missing", None, None)
    assert found["c1"] == Lookup("ok", _row("c1", 1.0), 3.0)


def test_ttl_expired_values_read_as_expired_and_are_left_out(make_store: MakeStore) -> None:
    store, now = make_store(ttl_s=10.0), time.time()
    fresh, stale = _row("fresh", now - 5.0), _row("stale", now - 15.0)
    store.upsert([fresh, stale])
    found = store.lookup(["fresh", "stale", "none"], now=now)
    assert (found["fresh"].status, found["fresh"].row) == ("ok", fresh)
    assert found["fresh"].age_s == pytest.approx(5.0)
    assert (found["stale"].status, found["stale"].row) == ("expired", stale)
    assert found["stale"].age_s == pytest.approx(15.0)
    assert found["none"].status == "missing"
    assert store.get_many(["fresh", "stale"]) == {"fresh": fresh}
    assert make_store().get_many(["stale"]) == {"stale": stale}  # no TTL: still served


def test_duplicates_in_the_key_list(store: OnlineStore) -> None:
    store.upsert([_row("c1", 1.0, "t1"), _row("c2", 2.0, "t2")])
    got = store.get_many(["c1", "c1", "c2", "c1"])
    assert sorted(got) == ["c1", "c2"] and got["c1"].event_id == "t1"
    assert sorted(store.lookup(["c2", "c2", "x", "x"])) == ["c2", "x"]


def test_count_newest_event_time_and_freshness(store: OnlineStore) -> None:
    assert (store.count(), store.newest_event_time(), freshness_seconds(store)) == (0, None, None)
    store.upsert([_row("c1", 5.0), _row("c2", 8.5), _row("c1", 6.0)])
    assert (store.count(), store.newest_event_time()) == (2, 8.5)
    store.upsert([_row("c2", 1.0)])  # older: ignored, newest unchanged
    assert (store.count(), store.newest_event_time()) == (2, 8.5)
    assert freshness_seconds(store, now=10.0) == 1.5


def test_a_failing_batch_writes_nothing(store: OnlineStore) -> None:
    unserializable = OnlineRow("c2", 1.0, "t", {"amount": object()}, [])  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        store.upsert([_row("c1", 1.0), unserializable])
    assert store.count() == 0
    store.upsert([])
    assert store.count() == 0


def test_two_store_objects_see_each_others_writes(make_store: MakeStore) -> None:
    writer, reader = make_store(), make_store()
    writer.upsert([_row("c1", 1.0, "t1")])
    assert reader.get_many(["c1"])["c1"].event_id == "t1"
    reader.upsert([_row("c1", 2.0, "t2")])
    assert writer.get_many(["c1"])["c1"].event_id == "t2"
    assert writer.count() == reader.count() == 1


def test_concurrent_upserts_end_with_the_newest_event_per_entity(make_store: MakeStore) -> None:
    entities = [f"c{i}" for i in range(10)]
    newest: list[dict[str, float]] = [{} for _ in range(4)]
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        rng, store = random.Random(worker), make_store()
        try:
            for _ in range(40):
                batch = [_row(e, rng.uniform(0, 1e6)) for e in rng.sample(entities, 5)]
                for row in batch:
                    newest[worker][row.entity] = max(row.event_time,
                                                     newest[worker].get(row.entity, 0.0))
                store.upsert(batch)
        except BaseException as ex:  # reported below, in the test's thread
            errors.append(ex)
        finally:
            store.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads) and errors == []
    expected = {e: max(n[e] for n in newest if e in n) for e in entities}
    got = make_store().get_many(entities)
    assert {e: row.event_time for e, row in got.items()} == expected
    assert all(row == _row(e, expected[e]) for e, row in got.items())


def test_open_online_store_follows_the_settings(tmp_path: Path, redis_url: str) -> None:
    sqlite = open_online_store(Settings(data_dir=tmp_path))
    assert isinstance(sqlite, SqliteOnlineStore) and sqlite.path == tmp_path / "online.db"
    sqlite.close()
    online = OnlineStoreSettings(backend="redis", redis_url=redis_url,
                                 key_prefix=f"test-{uuid.uuid4().hex}", ttl_s=30.0)
    store = open_online_store(Settings(data_dir=tmp_path, online=online))
    assert isinstance(store, RedisOnlineStore) and store.ttl_s == 30.0
    store.close()


def test_redis_unreachable_is_a_clear_error() -> None:
    with pytest.raises(OnlineStoreError, match=r"redis://127\.0\.0\.1:1/0") as info:
        RedisOnlineStore("redis://127.0.0.1:1/0", "test")
    assert isinstance(info.value, FtiError)
    with pytest.raises(OnlineStoreError, match=r"redis://user:\*\*\*@127") as info:
        RedisOnlineStore("redis://user:secret@127.0.0.1:1/0", "test")
    assert "secret" not in str(info.value)


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A uuid key prefix, its keys deleted afterwards."""
    prefix = f"test-{uuid.uuid4().hex}"
    yield prefix
    RedisOnlineStore(redis_url, prefix).clear()


def test_redis_reclaims_values_past_twice_the_ttl(redis_url: str, redis_prefix: str) -> None:
    store, now = RedisOnlineStore(redis_url, redis_prefix, ttl_s=10.0), time.time()
    store.upsert([_row("gone", now - 25.0), _row("kept", now - 1.0)])
    client = redis.Redis.from_url(redis_url)
    ttl_ms = client.pttl(f"{redis_prefix}:online:kept")
    assert 18_000 < ttl_ms <= 19_000  # expires at event time + 2 * ttl_s
    assert store.lookup(["gone"])["gone"].status == "missing"
    assert (store.count(), store.newest_event_time()) == (1, now - 1.0)
    store.close()
    client.close()


def test_redis_reloads_its_script_after_noscript(redis_url: str, redis_prefix: str) -> None:
    store = RedisOnlineStore(redis_url, redis_prefix)
    store._sha = "0" * 40  # as after a server restart or SCRIPT FLUSH
    store.upsert([_row("c1", 1.0, "t1")])
    assert store.get_many(["c1"])["c1"].event_id == "t1"
    store.close()
