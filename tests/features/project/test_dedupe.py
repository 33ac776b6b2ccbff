"""Replays in the offline tables: `dedupe_by_source` keeps the first row of each source."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from fti.features.project.training import dedupe_by_source

sources = st.tuples(st.sampled_from(["t", "u"]), st.integers(0, 2), st.integers(0, 6),
                    st.sampled_from(["a", "b", None]))


@settings(max_examples=200, deadline=None)
@given(st.lists(sources, max_size=40))
def test_the_first_row_of_each_source_stays_in_table_order(rows: list[tuple]) -> None:
    table = pa.table({
        "source_topic": [r[0] for r in rows], "source_partition": pa.array(
            [r[1] for r in rows], pa.int32()), "source_offset": pa.array(
            [r[2] for r in rows], pa.int64()), "source_topic_id": pa.array(
            [r[3] for r in rows], pa.string()), "row": list(range(len(rows)))})
    seen: set[tuple] = set()
    expected = []
    for i, source in enumerate(rows):
        if source not in seen:
            seen.add(source)
            expected.append(i)
    assert dedupe_by_source(table)["row"].to_pylist() == expected


def test_a_table_without_source_columns_or_replays_comes_back_as_it_is() -> None:
    bare = pa.table({"x": [1, 1]})
    assert dedupe_by_source(bare) is bare
    clean = pa.table({"source_topic": ["t", "t"], "source_partition": [0, 0],
                      "source_offset": [1, 2], "x": [5, 6]})
    assert dedupe_by_source(clean) is clean
