"""The generic engine with two workers and a restart: entities are re-keyed between the
workers, window state is restored from the recovery snapshot, and every row still equals
the brute force over all events (a lost or reset state would change the windows)."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta
from pathlib import Path

from bytewax.testing import cluster_main

from fti.connectors.kafka.clients import ensure_topic_names
from fti.connectors.offline.store import LanceOfflineStore
from fti.flows import materialize
from fti.flows.service import recovery_config
from fti.settings import RecoverySettings, Settings
from tests.features.project.brute_force import assert_rows_equal, brute_force_rows
from tests.flows.test_materialize import _plain, as_event, produce, ride_events, write_project
from tests.support import wait_for

_EPOCH = timedelta(milliseconds=200)


def _run(settings: Settings, project, stop: threading.Event) -> threading.Thread:  # noqa: ANN001
    errors: list[BaseException] = []

    def target() -> None:
        try:
            cluster_main(materialize.get_flow(settings, project, stop), [], 0,
                         worker_count_per_proc=2, epoch_interval=_EPOCH,
                         recovery_config=recovery_config(settings.recovery, "materialize"))
        except BaseException as ex:  # reported by the test
            errors.append(ex)

    thread = threading.Thread(target=target, daemon=True)
    thread.errors = errors  # type: ignore[attr-defined]
    thread.start()
    return thread


def test_two_workers_and_a_restart_keep_every_window_exact(settings: Settings,
                                                           tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    rides_topic, tips_topic = f"rides-{suffix}", f"tips-{suffix}"
    project = write_project(tmp_path / "project", rides_topic, tips_topic)
    settings = settings.model_copy(update={"recovery": RecoverySettings(
        dir=tmp_path / "recovery", snapshot_s=0.2)})
    ensure_topic_names(settings.kafka, [rides_topic, tips_topic, f"{rides_topic}.dlq",
                                        f"{tips_topic}.dlq"])
    rides = ride_events(600, seed=11)
    events = [as_event(r) for r in rides]
    groups = [project.groups["driver_stats"], project.groups["rider_stats"]]
    offline = LanceOfflineStore(settings.offline_location)

    def stored_after(n: int) -> dict[str, int]:
        return {g.name: sum(1 for r in brute_force_rows(g, events[:n]) if not isinstance(r, str))
                for g in groups}

    for first, last in ((0, 300), (300, 600)):  # run, stop, produce more, run again
        produce(settings.kafka.bootstrap_servers, rides_topic,
                [json.dumps(r).encode() for r in rides[first:last]])
        want = stored_after(last)
        stop = threading.Event()
        thread = _run(settings, project, stop)
        try:
            def done(want: dict[str, int] = want, thread: threading.Thread = thread) -> bool:
                return not thread.is_alive() or all(
                    offline.count(g.table_name) >= want[g.name] for g in groups)

            wait_for(done, timeout_s=90, what=f"rides up to {last} stored")
        finally:
            stop.set()
            thread.join(30)
        assert not thread.is_alive() and not thread.errors, thread.errors  # type: ignore[attr-defined]

    for group in groups:
        table, _ = offline.read(group.table_name)
        got = {r["ride_id"]: _plain(r) for r in table.to_pylist()}
        expected = [r for r in brute_force_rows(group, events) if not isinstance(r, str)]
        assert len(got) == table.num_rows == len(expected)  # no row twice
        for exp in expected:
            row = got[exp["ride_id"]]
            row["event_time"] = row["event_time"].timestamp()
            assert_rows_equal(row, exp, f"{group.name} {exp['ride_id']}")
