"""Tests of the SQLite online store: event-time-aware upserts, batched reads, sharing."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from fti.connectors.online import OnlineRow, SqliteOnlineStore


def _row(entity: str, event_time: float, event_id: str = "", amount: float = 1.0) -> OnlineRow:
    window = [[event_time, amount, "DE", event_id or f"{entity}@{event_time:g}"]]
    return OnlineRow(entity, event_time, event_id or f"{entity}@{event_time:g}", {"amount": amount},
                     window)


@pytest.fixture
def store(tmp_path: Path) -> SqliteOnlineStore:
    store = SqliteOnlineStore(tmp_path / "sub" / "online.db")
    yield store
    store.close()


def test_upsert_then_get_many_returns_rows_as_written(store: SqliteOnlineStore) -> None:
    rows = [_row("c1", 10.0, "t1", 2.5), _row("c2", 20.0, "t2", 7.0)]
    store.upsert(rows)
    assert store.get_many(["c1", "c2"]) == {"c1": rows[0], "c2": rows[1]}


def test_missing_keys_are_absent(store: SqliteOnlineStore) -> None:
    store.upsert([_row("c1", 1.0)])
    assert set(store.get_many(["nope", "c1", "other"])) == {"c1"}
    assert store.get_many(["nope"]) == {}
    assert store.get_many([]) == {}


def test_duplicate_keys_in_the_request(store: SqliteOnlineStore) -> None:
    store.upsert([_row("c1", 1.0, "t1"), _row("c2", 2.0, "t2")])
    got = store.get_many(["c1", "c1", "c2", "c1"])
    assert sorted(got) == ["c1", "c2"]
    assert got["c1"].event_id == "t1"


def test_newer_event_overwrites_and_older_never_does(store: SqliteOnlineStore) -> None:
    store.upsert([_row("c1", 5.0, "t5")])
    store.upsert([_row("c1", 9.0, "t9")])
    store.upsert([_row("c1", 7.0, "t7")])
    row = store.get_many(["c1"])["c1"]
    assert (row.event_time, row.event_id, row.window[0][3]) == (9.0, "t9", "t9")


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_newest_wins_within_one_batch_in_either_order(
    store: SqliteOnlineStore, order: tuple[int, int]
) -> None:
    rows = [_row("c1", 1.0, "old", 1.0), _row("c1", 2.0, "new", 2.0)]
    store.upsert([rows[i] for i in order])
    assert store.get_many(["c1"])["c1"] == rows[1]


def test_equal_event_time_overwrites(store: SqliteOnlineStore) -> None:
    store.upsert([_row("c1", 3.0, "first", 1.0)])
    store.upsert([_row("c1", 3.0, "second", 2.0)])
    row = store.get_many(["c1"])["c1"]
    assert (row.event_id, row.features) == ("second", {"amount": 2.0})


def test_count_and_newest_event_time(store: SqliteOnlineStore) -> None:
    assert store.count() == 0
    assert store.newest_event_time() is None
    store.upsert([_row("c1", 5.0), _row("c2", 8.5), _row("c1", 6.0)])
    assert store.count() == 2
    assert store.newest_event_time() == 8.5
    store.upsert([_row("c2", 1.0)])  # older: ignored, newest unchanged
    assert store.newest_event_time() == 8.5


def test_an_empty_upsert_is_a_no_op(store: SqliteOnlineStore) -> None:
    store.upsert([])
    assert store.count() == 0


def test_a_failing_batch_writes_nothing(store: SqliteOnlineStore) -> None:
    unserializable = OnlineRow("c2", 1.0, "t", {"amount": object()}, [])  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        store.upsert([_row("c1", 1.0), unserializable])
    assert store.count() == 0


def test_two_stores_on_one_file_see_each_others_writes(tmp_path: Path) -> None:
    path = tmp_path / "online.db"
    writer, reader = SqliteOnlineStore(path), SqliteOnlineStore(path)
    try:
        writer.upsert([_row("c1", 1.0, "t1")])
        assert reader.get_many(["c1"])["c1"].event_id == "t1"
        reader.upsert([_row("c1", 2.0, "t2")])
        assert writer.get_many(["c1"])["c1"].event_id == "t2"
        assert writer.count() == reader.count() == 1
    finally:
        writer.close()
        reader.close()


def test_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "online.db"
    first = SqliteOnlineStore(path)
    first.upsert([_row("c1", 4.0, "t4")])
    first.close()
    second = SqliteOnlineStore(path)
    assert second.get_many(["c1"])["c1"].event_id == "t4"
    second.close()


def test_one_store_shared_by_threads(store: SqliteOnlineStore) -> None:
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(50):
                store.upsert([_row(f"w{worker}-{i % 5}", float(i), f"w{worker}-t{i}")])
                assert f"w{worker}-{i % 5}" in store.get_many([f"w{worker}-{i % 5}"])
        except BaseException as ex:  # reported below, in the test's thread
            errors.append(ex)
        finally:
            store.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert store.count() == 20
    newest = store.get_many([f"w{w}-{k}" for w in range(4) for k in range(5)])
    assert {row.event_time for row in newest.values()} == {float(i) for i in range(45, 50)}
    assert newest["w2-4"].event_id == "w2-t49"


def test_a_file_from_before_the_event_id_column_is_renamed_in_place(tmp_path: Path) -> None:
    path = tmp_path / "online.db"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE online_features (entity TEXT PRIMARY KEY, event_time REAL "
                    "NOT NULL, tx_id TEXT NOT NULL, features TEXT NOT NULL, window TEXT NOT "
                    "NULL, updated_at REAL NOT NULL DEFAULT 0)")
        old.execute("INSERT INTO online_features VALUES ('c1', 5.0, 't5', '{\"x\": 1.0}', "
                    "'[]', 0)")
    store = SqliteOnlineStore(path)
    assert store.get_many(["c1"])["c1"].event_id == "t5"
    store.upsert([OnlineRow("c1", 6.0, "t6", {"x": 2.0}, [])])
    assert store.get_many(["c1"])["c1"].event_id == "t6"
