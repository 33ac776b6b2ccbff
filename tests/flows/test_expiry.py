"""Keyed state expires: memory stays flat however many distinct keys pass through."""

from __future__ import annotations

import gc

import bytewax.operators as op
import psutil
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from fti.flows.expiry import ExpiringLogic, expiring_flat_map


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _count(state: int | None, value: str) -> tuple[int | None, list[int]]:
    state = (state or 0) + 1
    return (None if value == "done" else state), [state]


def test_state_lives_until_its_ttl_after_the_last_item() -> None:
    clock = _Clock()
    logic = ExpiringLogic(_count, 10.0, None, clock)
    assert logic.on_item("a") == ([1], False)
    clock.now += 9
    assert logic.on_item("a") == ([2], False)  # touched again: the TTL restarts
    clock.now += 9.5
    assert logic.on_notify() == ((), False)
    assert logic.notify_at().timestamp() == pytest.approx(1009.0 + 10.0)
    clock.now += 1
    assert logic.on_notify() == ((), True)  # 10 s without an item: discarded


def test_a_mapper_returning_none_discards_at_once_and_snapshots_resume() -> None:
    clock = _Clock()
    logic = ExpiringLogic(_count, 10.0, None, clock)
    logic.on_item("a")
    resumed = ExpiringLogic(_count, 10.0, logic.snapshot(), clock)
    assert resumed.on_item("a") == ([2], False)
    assert resumed.on_item("done") == ([3], True)


@pytest.mark.slow
def test_memory_stays_flat_over_a_million_distinct_keys() -> None:
    keys = 1_000_000
    payload = b"x" * 200  # about 0.5 GB if every key's state were kept
    out: list[int] = []

    def keep(state: bytes | None, value: int) -> tuple[bytes | None, list[int]]:
        return payload + b"%d" % value, ([value] if value % 100_000 == 0 else [])

    flow = Dataflow("expiry")
    items = op.input("in", flow, TestingSource(range(keys), batch_size=10_000))
    keyed = op.key_on("key", items, str)
    kept = expiring_flat_map("keep", keyed, keep, ttl_s=0.2)
    op.output("out", op.map("value", kept, lambda kv: kv[1]), TestingSink(out))
    gc.collect()
    before = psutil.Process().memory_info().rss
    run_main(flow)
    gc.collect()
    grown_mb = (psutil.Process().memory_info().rss - before) / 2**20
    assert sorted(out) == list(range(0, keys, 100_000))
    assert grown_mb < 150, f"RSS grew {grown_mb:.0f} MB over {keys:,} distinct keys"
