"""`fti dataset` (features/datasets.py, fti/cli/dataset.py) on the tests' own rides project
(tests/flows/test_materialize.py), not an example: a regression model of tips and a binary
model of ride ratings, their history backfilled into a temporary offline store."""

from __future__ import annotations

import argparse
import json
import random
import shutil
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from fti.cli.dataset import add_dataset_parser, run_dataset_command
from fti.errors import FtiError
from fti.features.dataset_records import (
    Split,
    load_dataset_record,
    rows_sha256,
    save_dataset_version,
)
from fti.features.datasets import (
    CREATE_STEPS,
    create_dataset,
    dataset_files,
    dataset_hash,
    list_datasets,
    project_model,
    read_dataset,
)
from fti.features.project.applied import apply
from fti.features.project.backfill import backfill
from fti.features.project.datasets import build_model_dataset, read_model_rows
from fti.features.project.loader import Project, load_project
from fti.settings import Settings, TrainingSettings
from tests.flows.test_materialize import ride_events, write_project

RIDES = 400
MORE = '''
from fti.features.project import Model

ratings = Stream("ratings", topic="ratings", event_time="ts",
    fields=[Field("ride_id"), Field("driver_id"), Field("rider_id"), Field("good", "int"),
            Field("ts", "timestamp")])
good = Label("good", stream=ratings, value="good")
rating_model = FeatureView("rating_model", label=good, groups=[drivers, riders], ttl="1d")

tipper = Model("tipper", view=tip_model, task="regression")
rater = Model("rater", view=rating_model, task="binary")
'''
TABLES = ("driver_stats_v1", "rider_stats_v1")


def _backfill(settings: Settings, project: Project, folder: Path, rides: list[dict],
              seed: int) -> None:
    """The rides, a tip and a rating (~20 % good) of each, through the project's streams."""
    rng = random.Random(seed)
    keys = [{k: r[k] for k in ("ride_id", "driver_id", "rider_id")} for r in rides]
    labels = {
        "rides": rides,
        "tips": [{**k, "tip": round(rng.uniform(0, 10), 2), "ts": r["ts"] + 60_000}
                 for k, r in zip(keys, rides, strict=True)],
        "ratings": [{**k, "good": int(rng.random() < 0.2), "ts": r["ts"] + 120_000}
                    for k, r in zip(keys, rides, strict=True)],
    }
    for stream, rows in labels.items():
        path = folder / f"{stream}-{seed}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        groups = [g for g in project.groups.values() if g.stream.name == stream]
        label = [lb for lb in project.labels.values() if lb.stream.name == stream]
        backfill(settings, project.streams[stream], groups, label, [path])


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with RIDES rides, tips and ratings backfilled and its definitions applied."""
    root = tmp_path_factory.mktemp("rides")
    write_project(root / "project", "rides", "tips")
    with (root / "project" / "definitions.py").open("a") as handle:
        handle.write(MORE)
    project = load_project(root / "project")
    settings = Settings(data_dir=root / "data")
    _backfill(settings, project, root, ride_events(RIDES, seed=5), seed=1)
    apply(project, settings.data_dir)
    return root


@pytest.fixture
def store(history: Path, tmp_path: Path) -> tuple[Settings, Project]:
    """A copy of the backfilled history of this test's own, and the project."""
    shutil.copytree(history / "data", tmp_path / "data")
    return Settings(data_dir=tmp_path / "data"), load_project(history / "project")


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fti")
    add_dataset_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(list(argv))


def _sizes(split: Split) -> list[int]:
    return [part.num_rows for part in split.parts().values()]


def _ids(split: Split) -> list[set[str]]:
    return [set(part["ride_id"].to_pylist()) for part in split.parts().values()]


@pytest.mark.parametrize("split", ["time", "random", "stratified"])
def test_create_writes_parquet_and_records_the_version(
    store: tuple[Settings, Project], split: str
) -> None:
    settings, project = store
    model = project_model(project, "rater")
    n = create_dataset(settings, model, split=split, fractions=(0.65, 0.15, 0.2), seed=3)
    record = load_dataset_record(settings.data_dir / "datasets", n)
    assert n == 1 and (record.view, record.model, record.split) == ("rating_model", "rater", split)
    assert record.table_versions == {"label_good_v1": 2, **dict.fromkeys(TABLES, 2)}
    assert record.fractions == (0.65, 0.15, 0.2) and record.seed == 3
    assert [record.splits[k].rows for k in ("train", "validation", "test")] == [260, 60, 80]
    assert record.rows == RIDES and sum(s.positives for s in record.splits.values()) > 40
    parts = read_dataset(settings, project, n)
    train, validation, test = _ids(parts)
    assert not (train & validation or train & test or validation & test)
    assert len(train | validation | test) == RIDES
    for name, path in dataset_files(settings, n).items():
        written = pq.read_table(path)
        assert written.num_rows == record.splits[name].rows
        assert rows_sha256(written) == record.splits[name].rows_sha256
        assert written.equals(parts.parts()[name])
        assert {"ride_id", "event_time", "good", "driver_stats__count_10m"} <= set(
            written.column_names)
    if split == "time":
        ends = [(pc.min(p["event_time"]).as_py(), pc.max(p["event_time"]).as_py())
                for p in parts.parts().values()]
        assert ends[0][1] <= ends[1][0] and ends[1][1] <= ends[2][0]
        assert record.splits["train"].label_time_max == ends[0][1]
    again = load_dataset_record(settings.data_dir / "datasets",
                                create_dataset(settings, model, split=split, seed=3))
    assert again.splits == record.splits  # deterministic
    if split != "time":
        other = create_dataset(settings, model, split=split, seed=4)
        assert load_dataset_record(settings.data_dir / "datasets", other).splits != record.splits


def test_stratified_keeps_each_class_share_and_needs_classes(
    store: tuple[Settings, Project]
) -> None:
    settings, project = store
    rater = project_model(project, "rater")
    for seed in range(3):
        n = create_dataset(settings, rater, split="stratified", seed=seed)
        split = read_dataset(settings, project, n)
        everything = pa.concat_tables(split.parts().values())
        positives = pc.sum(everything["good"]).as_py()
        for part in split.parts().values():
            exact = positives * part.num_rows / everything.num_rows
            assert abs(pc.sum(part["good"]).as_py() - exact) <= 1
    with pytest.raises(FtiError, match="tipper is a regression model: a stratified split"):
        create_dataset(settings, project_model(project, "tipper"), split="stratified")


def test_hash_is_stable_after_the_offline_store_grows(store: tuple[Settings, Project],
                                                      tmp_path: Path) -> None:
    settings, project = store
    tipper = project_model(project, "tipper")
    steps: list[str] = []
    n = create_dataset(settings, tipper, gap=timedelta(minutes=10), on_step=steps.append)
    before = read_dataset(settings, project, n)
    record = load_dataset_record(settings.data_dir / "datasets", n)
    assert steps == list(CREATE_STEPS) and record.gap == timedelta(minutes=10)
    assert record.rows < RIDES  # the gap dropped rows
    gaps = [pc.min(later["event_time"]).as_py() - pc.max(earlier["event_time"]).as_py()
            for earlier, later in ((before.train, before.validation),
                                   (before.validation, before.test))]
    assert min(gaps) >= timedelta(minutes=10)

    newer = ride_events(RIDES + 300, seed=5)[RIDES:]  # newer rides: new table versions
    _backfill(settings, project, tmp_path, newer, seed=2)
    assert dataset_hash(settings, project, n) == record.rows_sha256
    again = read_dataset(settings, project, n)
    for name, part in again.parts().items():
        assert part.equals(before.parts()[name])
        assert rows_sha256(part) == record.splits[name].rows_sha256
    latest = load_dataset_record(settings.data_dir / "datasets",
                                 create_dataset(settings, tipper))
    assert latest.rows == RIDES + 300
    assert all(latest.table_versions[t] > record.table_versions[t] for t in record.table_versions)


def test_time_ranges_and_training_job_records_are_listed(store: tuple[Settings, Project]) -> None:
    settings, project = store
    tipper = project_model(project, "tipper")
    rows, _ = read_model_rows(tipper, str(settings.offline_location))
    times = rows["event_time"].to_pylist()
    cut = [times[200], times[300], times[320]]
    ranges = {"train": (None, cut[0]), "validation": (cut[0], cut[1]), "test": (cut[2], None)}
    n = create_dataset(settings, tipper, ranges=ranges)
    record = load_dataset_record(settings.data_dir / "datasets", n)
    assert record.ranges is not None and record.fractions is None
    before = lambda t: sum(1 for x in times if x < t)  # noqa: E731
    assert [record.splits[k].rows for k in ("train", "validation", "test")] == [
        before(cut[0]), before(cut[1]) - before(cut[0]), RIDES - before(cut[2])]
    assert dataset_hash(settings, project, n) == record.rows_sha256

    job = build_model_dataset(tipper, str(settings.offline_location),
                              TrainingSettings(window_labels=300))
    assert job.record.model == "tipper" and job.record.rows == 300
    assert _sizes(job.split) == [195, 45, 60]
    assert job.split.train.equals(rows.slice(RIDES - 300, 195))  # newest 300, oldest train
    m = save_dataset_version(settings.data_dir / "datasets", job.record)
    legacy = save_dataset_version(settings.data_dir / "datasets",
                                  job.record.model_copy(update={"model": None}))
    assert list(list_datasets(settings)) == [n, m, legacy]
    assert dataset_hash(settings, project, m) == job.record.rows_sha256
    assert dataset_hash(settings, project, legacy) == job.record.rows_sha256  # by its view


def test_refusals_are_clear(store: tuple[Settings, Project], tmp_path: Path) -> None:
    settings, project = store
    rater = project_model(project, "rater")
    with pytest.raises(FtiError, match="unknown model 'nope'; .* declares rater, tipper"):
        project_model(project, "nope")
    with pytest.raises(FtiError, match="name one with --model; .* declares rater, tipper"):
        project_model(project)
    with pytest.raises(FtiError, match="gap applies to time splits only"):
        create_dataset(settings, rater, split="random", gap=timedelta(hours=1))
    with pytest.raises(FtiError, match="must sum to 1"):
        create_dataset(settings, rater, fractions=(0.5, 0.2, 0.2))
    with pytest.raises(FtiError, match="ranges are needed for all of"):
        create_dataset(settings, rater, ranges={"train": (None, None)})
    with pytest.raises(FtiError, match="validation split is empty once rows within the gap"):
        create_dataset(settings, rater, gap=timedelta(days=2))
    empty = Settings(data_dir=tmp_path / "empty")
    with pytest.raises(FtiError, match=r"model rater: no labelled rows of view rating_model in "
                                       r".*empty/offline .*run `fti materialize` or `fti backfill"):
        create_dataset(empty, rater)
    assert list_datasets(empty) == {}
    n = create_dataset(settings, rater)
    other = Project(project.directory, models={"tipper": project.models["tipper"]})
    with pytest.raises(FtiError, match="built for model rater, which the project .* does not"):
        read_dataset(settings, other, n)


def test_cli_round_trip(store: tuple[Settings, Project], tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    settings, project = store
    directory = str(project.directory)
    args = _parse("dataset", "create", "--project", directory, "--model", "rater",
                  "--split", "stratified", "--fractions", "0.7,0.1,0.2", "--seed", "9")
    assert args.handler is run_dataset_command and args.fractions == (0.7, 0.1, 0.2)
    with pytest.raises(FtiError, match="apply"):  # definitions not applied to this data dir
        run_dataset_command(args, Settings(data_dir=tmp_path / "elsewhere"))
    assert run_dataset_command(args, settings) == 0
    assert capsys.readouterr().out.startswith(
        "dataset 1: model rater (view rating_model), stratified 0.7/0.1/0.2;")
    args = _parse("dataset", "create", "--project", directory, "--model", "tipper",
                  "--gap", "1h30m", "--train-range", "..2026-11-01T01:00:00Z",
                  "--validation-range", "2026-11-01T01:00:00Z..2026-11-01T02:00:00Z",
                  "--test-range", "2026-11-01T02:00:00+00:00..")
    assert args.gap == timedelta(minutes=90) and args.train_range[0] is None
    with pytest.raises(FtiError, match="drop --split / --gap"):
        run_dataset_command(args, settings)
    args.gap = None
    assert run_dataset_command(args, settings) == 0
    assert "model tipper (view tip_model), time ranges;" in capsys.readouterr().out
    assert run_dataset_command(_parse("dataset", "list", "--project", directory), settings) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["N", "created", "(UTC)", "model"] and len(table) == 3
    assert "rater" in table[1] and "stratified 0.7/0.1/0.2" in table[1]
    assert "driver_stats_v1@2 label_good_v1@2 rider_stats_v1@2" in table[1]
    assert run_dataset_command(_parse("dataset", "show", "2", "--hash", "--json",
                                      "--project", directory), settings) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == 2 and shown["model"] == "tipper"
    assert shown["ranges"]["test"][1] is None and len(shown["files"]) == 3
    assert all(check["match"] for check in shown["hash_check"].values())
    assert run_dataset_command(_parse("dataset", "show", "1", "--hash", "--project", directory),
                               settings) == 0
    out = capsys.readouterr().out
    assert "  model      rater" in out and "re-read all        sha256" in out
    assert " positive " in out


@pytest.mark.parametrize("argv", [
    ["--gap", "1 hour"], ["--fractions", "0.5,0.5"], ["--train-range", "2026-01-01..2026-01-02"],
    ["--split", "kfold"], ["--test-range", "2026-01-01T00:00:00Z"],
])
def test_cli_rejects_bad_arguments(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        _parse("dataset", "create", *argv)


def test_show_reports_a_hash_mismatch(store: tuple[Settings, Project],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    settings, project = store
    n = create_dataset(settings, project_model(project, "tipper"))
    path = settings.data_dir / "datasets" / f"{n}.json"
    record = json.loads(path.read_text())
    record["splits"]["test"]["rows_sha256"] = "0" * 64
    path.write_text(json.dumps(record))
    argv = ("dataset", "show", str(n), "--hash", "--project", str(project.directory))
    assert run_dataset_command(_parse(*argv), settings) == 1
    assert "MISMATCH" in capsys.readouterr().out
    assert run_dataset_command(_parse("dataset", "list"), Settings(
        data_dir=settings.data_dir / "none")) == 1
