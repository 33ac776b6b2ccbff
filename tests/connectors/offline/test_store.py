"""The offline store: idempotent appends, compaction that keeps time travel working."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from fti.connectors.offline.store import LanceOfflineStore
from fti.features.dataset_records import rows_sha256

SCHEMA = pa.schema([
    ("source_topic", pa.string()), ("source_partition", pa.int32()),
    ("source_offset", pa.int64()), ("x", pa.float64()),
])


def rows(start: int, stop: int, partition: int = 0) -> list[dict]:
    return [{"source_topic": "t", "source_partition": partition, "source_offset": i, "x": i * 0.5}
            for i in range(start, stop)]


def test_replayed_rows_are_skipped_per_partition(tmp_path: Path) -> None:
    store = LanceOfflineStore(tmp_path)
    assert store.append_once("t", SCHEMA, rows(0, 100) + rows(0, 50, partition=1)) == 150
    again = LanceOfflineStore(tmp_path)  # as after a restart
    assert again.append_once("t", SCHEMA, rows(90, 120) + rows(40, 60, partition=1)) == 30
    assert again.append_once("t", SCHEMA, rows(120, 130)) == 10
    assert store.count("t") == 190


def test_compaction_merges_fragments_and_old_versions_stay_readable(tmp_path: Path) -> None:
    store = LanceOfflineStore(tmp_path)
    for start in range(0, 300, 10):
        store.append("t", SCHEMA, rows(start, start + 10))
    import lancedb

    table = lancedb.connect(str(tmp_path)).open_table("t")
    old_version = table.version - 10  # 200 rows then
    table.checkout(old_version)
    old_rows = table.to_arrow()

    result = store.compact("t")
    assert result.fragments_before == 30 and result.fragments_after == 1
    assert result.rows == 300 and result.version_after > result.version_before

    table = lancedb.connect(str(tmp_path)).open_table("t")
    table.checkout(old_version)
    assert rows_sha256(table.to_arrow()) == rows_sha256(old_rows)
    assert old_rows.num_rows == 200


def test_training_data_reread_after_compaction_is_identical(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from fti.features.project import FeatureGroup, FeatureView, Field, Label, Stream, agg
    from fti.features.project.tables import group_schema, label_schema, label_table
    from fti.features.project.training import read_view_at

    events = Stream("events", topic="events", id="event_id", event_time="ts",
                    fields=[Field("event_id"), Field("user"), Field("x", "float"),
                            Field("ts", "timestamp")])
    outcomes = Stream("outcomes", topic="outcomes", event_time="ts",
                      fields=[Field("event_id"), Field("y", "int"), Field("ts", "timestamp")])
    group = FeatureGroup("activity", entity="user", stream=events, features=["x"],
                         aggregations=[agg.count(window="1h")])
    view = FeatureView("v", label=Label("y", stream=outcomes, value="y"), groups=[group])
    store = LanceOfflineStore(tmp_path)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    store.append(label_table(view.label), label_schema(view.label), [
        {"event_id": f"e-{i}", "y": i % 2, "event_time": t0 + timedelta(hours=1),
         "source_topic": "l", "source_partition": 0, "source_offset": i} for i in range(20)])
    schema = group_schema(group)
    for batch in range(20):
        store.append(group.table_name, schema, [
            {"user": "u", "event_id": f"e-{batch}", "event_time": t0 + timedelta(minutes=i),
             **{name: float(i) for name in group.feature_types()}, "source_topic": "t",
             "source_partition": 0, "source_offset": batch * 10 + i}
            for i in range(10)
        ])
    before, versions = read_view_at(view, str(tmp_path))
    store.compact(group.table_name)
    store.append(group.table_name, schema, [])  # no-op
    again, _ = read_view_at(view, str(tmp_path), versions)
    assert before.num_rows == 20 and rows_sha256(again) == rows_sha256(before)


def test_memory_stays_flat_over_many_small_appends(tmp_path: Path) -> None:
    def rss_mb() -> float:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * 4096 / 2**20

    store = LanceOfflineStore(tmp_path)
    for start in range(0, 2000, 10):  # warm-up: caches fill to their bound
        store.append("t", SCHEMA, rows(start, start + 10))
    before = rss_mb()
    for start in range(2000, 12000, 10):  # 1,000 more versions, as a streaming writer makes
        store.append("t", SCHEMA, rows(start, start + 10))
    # The default caches grew ~0.3 MB per append here (300 MB over these 1,000).
    assert rss_mb() - before < 100


ID_SCHEMA = SCHEMA.append(pa.field("source_topic_id", pa.string()))


def test_a_recreated_topic_is_new_data_and_its_replays_are_still_skipped(
    tmp_path: Path,
) -> None:
    """A broker that keeps topics in memory restarts: offsets begin at 0 again, new topic id."""
    store = LanceOfflineStore(tmp_path)
    first = [{**r, "source_topic_id": "A"} for r in rows(0, 100)]
    second = [{**r, "source_topic_id": "B"} for r in rows(0, 40)]
    assert store.append_once("t", ID_SCHEMA, first) == 100
    assert store.append_once("t", ID_SCHEMA, second) == 40
    assert LanceOfflineStore(tmp_path).append_once("t", ID_SCHEMA, second[20:] + first[90:]) == 0
    assert store.count("t") == 140


def test_a_table_written_before_topic_ids_gains_the_column(tmp_path: Path) -> None:
    LanceOfflineStore(tmp_path).append_once("t", SCHEMA, rows(0, 10))
    store = LanceOfflineStore(tmp_path)
    # The old rows have no id: their replays are still skipped, a new incarnation's are not.
    replay = [{**r, "source_topic_id": ""} for r in rows(5, 12)]
    assert store.append_once("t", ID_SCHEMA, replay) == 2
    assert store.append_once("t", ID_SCHEMA, [{**r, "source_topic_id": "B"}
                                               for r in rows(0, 3)]) == 3
    table, _ = store.read("t")
    assert table.schema.field("source_topic_id").type == pa.string()
    assert table.num_rows == 15
