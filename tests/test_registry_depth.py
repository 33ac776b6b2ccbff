"""The registry in depth: filesystems, staging, approvals, history, diff, concurrency, CLI."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest
from pyarrow import fs as pafs

from fti.cli.registry import add_registry_parser, run_registry_command
from fti.errors import RegistryError
from fti.events import RegistryEvent
from fti.models.registry import ModelRegistry, sha256_file
from fti.models.registry.history import supported_event_kinds
from fti.models.registry.store import RegistryStore
from fti.settings import Settings

MODEL = "fraud-xgb"
PASSED = {"passed": True, "reasons": []}
FAILED = {"passed": False, "reasons": ["roc_auc 0.61 < min 0.75"]}
KINDS = ["local", "subtree"]


def _source(tmp_path: Path, content: bytes, name: str) -> Path:
    source = tmp_path / "sources" / name
    source.mkdir(parents=True)
    (source / "model.ubj").write_bytes(content)
    (source / "model_card.md").write_text(f"# card {name}\n")
    return source


def _open(root: str, kind: str) -> ModelRegistry:
    """A registry on a local path, or on a SubTreeFileSystem simulating a bucket prefix."""
    if kind == "local":
        return ModelRegistry(Path(root) / "registry")
    bucket = Path(root) / "bucket"
    bucket.mkdir(exist_ok=True)
    return ModelRegistry(
        "prefix/registry", filesystem=pafs.SubTreeFileSystem(str(bucket), pafs.LocalFileSystem())
    )


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def registry(tmp_path: Path, kind: str) -> ModelRegistry:
    return _open(str(tmp_path), kind)


@pytest.fixture(autouse=True)
def user(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("USER", "ann")
    return "ann"


def _register(registry: ModelRegistry, tmp_path: Path, n: int, **fields: Any) -> int:
    fields = {"gates": PASSED, "metrics": {"roc_auc": 0.9 + n / 100}} | fields
    return registry.register(MODEL, _source(tmp_path, bytes([n]) * 8, f"s{n}"), **fields).version


# -- filesystems ----------------------------------------------------------------------------------


def test_subtree_root_keeps_everything_under_the_bucket_prefix(tmp_path: Path) -> None:
    registry = _open(str(tmp_path), "subtree")
    assert not registry._store.atomic_rename  # the object-store protocol is the one in use
    v = registry.register(MODEL, _source(tmp_path, b"w", "a"), gates=PASSED, device="cpu")
    folder = tmp_path / "bucket" / "prefix" / "registry" / MODEL / "1"
    assert {"model.ubj", "model_card.md", "metadata.json", "_COMPLETE"} <= {
        p.name for p in folder.iterdir()}
    assert registry.root == folder.parent.parent
    assert registry.uri(MODEL, 1) == folder.resolve().as_uri()
    assert registry.artifact_path(MODEL, 1, "model.ubj") == folder / "model.ubj"
    assert registry.get(MODEL, 1) == v and v.device == "cpu"


def test_file_uri_and_path_roots_are_the_same_registry(tmp_path: Path) -> None:
    by_path = ModelRegistry(tmp_path / "reg")
    _register(by_path, tmp_path, 1)
    by_uri = ModelRegistry((tmp_path / "reg").as_uri())
    assert by_uri.version_numbers(MODEL) == [1] and by_uri.get(MODEL, 1) == by_path.get(MODEL, 1)


def test_remote_filesystem_downloads_verified_copies(tmp_path: Path) -> None:
    registry = ModelRegistry("mock:///models", cache_dir=tmp_path / "cache")
    _register(registry, tmp_path, 1)
    assert registry.uri(MODEL, 1) == f"mock://models/{MODEL}/1"
    path = registry.artifact_path(MODEL, 1, "model.ubj")
    assert path.is_relative_to(tmp_path / "cache") and path.read_bytes() == bytes([1]) * 8
    path.write_bytes(b"corrupted cache")  # a bad cached copy is replaced, never returned
    assert registry.read_artifact(MODEL, 1, "model.ubj") == bytes([1]) * 8
    with registry.filesystem.open_output_stream(f"models/{MODEL}/1/model.ubj") as out:
        out.write(b"tampered at the source")
    fresh = ModelRegistry("models", registry.filesystem, cache_dir=tmp_path / "cache2")
    with pytest.raises(RegistryError, match="sha256 mismatch"):
        fresh.artifact_path(MODEL, 1, "model.ubj")
    assert not (tmp_path / "cache2" / MODEL / "1" / "model.ubj").exists()


def test_tamper_detection_through_the_filesystem_layer(tmp_path: Path, kind: str) -> None:
    registry = _open(str(tmp_path), kind)
    v = registry.register(MODEL, _source(tmp_path, b"weights", "a"), gates=PASSED)
    path = registry.artifact_path(MODEL, 1, "model.ubj")
    os.chmod(path, 0o644)
    path.write_bytes(b"evil weights")
    with pytest.raises(RegistryError, match="sha256 mismatch") as err:
        registry.artifact_path(MODEL, 1, "model.ubj")
    assert v.files["model.ubj"] in str(err.value) and sha256_file(path) in str(err.value)


# -- immutability and staging ---------------------------------------------------------------------


def test_a_version_is_invisible_until_complete(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = _open(str(tmp_path), kind)
    reader = _open(str(tmp_path), kind)
    seen: list[list[int]] = []
    write = RegistryStore.write_bytes

    def watching(self: RegistryStore, path: str, data: bytes) -> None:
        if path.endswith("_COMPLETE"):  # everything else of the version is written by now
            seen.append(reader.version_numbers(MODEL))
            with pytest.raises(RegistryError, match="not found"):
                reader.get(MODEL, 1)
        write(self, path, data)

    monkeypatch.setattr(RegistryStore, "write_bytes", watching)
    _register(registry, tmp_path, 1)
    assert seen == [[]] and reader.version_numbers(MODEL) == [1]


def test_an_unfinished_version_stays_invisible_and_its_number_is_skipped(tmp_path: Path) -> None:
    registry = _open(str(tmp_path), "subtree")
    _register(registry, tmp_path, 1)
    crashed = tmp_path / "bucket" / "prefix" / "registry" / MODEL / "2"
    crashed.mkdir()
    (crashed / "metadata.json").write_text("{}")  # a writer died before _COMPLETE
    assert registry.version_numbers(MODEL) == [1]
    with pytest.raises(RegistryError, match="version 2 not found"):
        registry.get(MODEL, 2)
    assert _register(registry, tmp_path, 3) == 3


def test_a_failed_write_leaves_nothing_visible(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = _open(str(tmp_path), kind)
    write = RegistryStore.write_bytes

    def broken(self: RegistryStore, path: str, data: bytes) -> None:
        if path.endswith("_COMPLETE"):  # artifacts and metadata.json are already written
            raise OSError("disk full")
        write(self, path, data)

    monkeypatch.setattr(RegistryStore, "write_bytes", broken)
    with pytest.raises(OSError, match="disk full"):
        _register(registry, tmp_path, 1)
    monkeypatch.setattr(RegistryStore, "write_bytes", write)
    assert registry.version_numbers(MODEL) == []
    model_dir = Path(registry.root) / MODEL
    assert [p.name for p in model_dir.iterdir() if not p.name.startswith(".")] == []
    assert _register(registry, tmp_path, 2) == 1


def test_metadata_json_never_changes(tmp_path: Path, registry: ModelRegistry) -> None:
    _register(registry, tmp_path, 1)
    metadata = Path(registry.root) / MODEL / "1" / "metadata.json"
    before = metadata.read_bytes()
    registry.approve(MODEL, 1, "ok")
    registry.promote(MODEL, 1)
    registry.promote(MODEL, 1, alias="challenger")
    assert metadata.read_bytes() == before
    assert registry.get(MODEL, 1).approval.status == "approved"


def test_older_registries_without_markers_or_history_still_work(tmp_path: Path) -> None:
    folder = tmp_path / "reg" / MODEL
    for n in (1, 2, 3):
        (folder / str(n)).mkdir(parents=True)
        (folder / str(n) / "model.ubj").write_bytes(b"x")
        (folder / str(n) / "metadata.json").write_text(json.dumps({
            "model": MODEL, "version": n, "created_at": "2026-01-01T00:00:00Z",
            "files": {"model.ubj": sha256_file(folder / str(n) / "model.ubj")},
            "gates": PASSED, "promoted": n != 2}))
    (folder / "aliases.json").write_text('{"champion": 3}')
    registry = ModelRegistry(tmp_path / "reg")
    assert registry.version_numbers(MODEL) == [1, 2, 3]
    assert registry.get(MODEL, 3).approval.status == "pending"
    assert registry.rollback(MODEL, "no history: newest promoted before 3") == 1


def test_code_version_defaults_to_this_checkout(tmp_path: Path, registry: ModelRegistry) -> None:
    _register(registry, tmp_path, 1)
    _register(registry, tmp_path, 2, code_version="abc123",
              signature={"inputs": [{"name": "amount", "dtype": "float32"}]},
              lineage={"feature_view": "fraud", "dataset_version": 4,
                       "table_versions": {"transactions": 7}})
    first, second = registry.get(MODEL, 1), registry.get(MODEL, 2)
    assert first.code_version and (len(first.code_version) == 40
                                   or first.code_version.startswith("fti=="))
    assert second.code_version == "abc123" and second.lineage.table_versions == {
        "transactions": 7}
    assert second.signature.inputs[0].name == "amount"


# -- approvals, aliases, history ------------------------------------------------------------------


def test_approval_flow(tmp_path: Path, registry: ModelRegistry) -> None:
    _register(registry, tmp_path, 1)
    assert registry.approval(MODEL, 1).status == "pending"
    entry = registry.approve(MODEL, 1, "reviewed the card")
    approval = registry.approval(MODEL, 1)
    assert (approval.status, approval.by, approval.reason) == ("approved", "ann",
                                                               "reviewed the card")
    assert approval.at == entry.at
    with pytest.raises(RegistryError, match="needs a reason"):
        registry.reject(MODEL, 1, " ")
    registry.reject(MODEL, 1, "bias on country=FR", actor="bob")
    assert registry.approval(MODEL, 1).status == "rejected"
    with pytest.raises(RegistryError, match="approval rejected by bob"):
        registry.promote(MODEL, 1)
    assert [(e.action, e.actor) for e in registry.history(MODEL)] == [
        ("approved", "ann"), ("rejected", "bob")]


def test_challenger_alias(tmp_path: Path, registry: ModelRegistry) -> None:
    for n in (1, 2):
        _register(registry, tmp_path, n)
    registry.promote(MODEL, 1)
    entry = registry.promote(MODEL, 2, alias="challenger", reason="shadow traffic")
    assert registry.aliases(MODEL) == {"champion": 1, "challenger": 2}
    assert (entry.action, entry.alias, entry.from_version) == ("challenger_set", "challenger",
                                                               None)
    event = registry.event_for(MODEL, entry)
    assert (event.event, event.alias, event.version) == ("promoted", "challenger", 2)
    assert registry.resolve(MODEL, "challenger") == 2
    registry.promote(MODEL, registry.resolve(MODEL, "challenger"))
    assert registry.alias(MODEL) == 2


def test_history_records_every_change(tmp_path: Path, registry: ModelRegistry) -> None:
    for n in (1, 2, 3):
        _register(registry, tmp_path, n, gates=FAILED if n == 3 else PASSED)
    registry.promote(MODEL, 1, reason="first")
    registry.promote(MODEL, 2, alias="challenger")
    registry.approve(MODEL, 2)
    registry.promote(MODEL, 2, reason="won the shadow test")
    registry.promote(MODEL, 3, force=True, reason="hotfix, gates are wrong")
    registry.rollback(MODEL, "hotfix broke scoring")
    registry.set_alias(MODEL, "shadow", 1)
    history = registry.history(MODEL)
    assert [(e.action, e.alias, e.from_version, e.to_version, e.forced) for e in history] == [
        ("promoted", "champion", None, 1, False),
        ("challenger_set", "challenger", None, 2, False),
        ("approved", None, None, 2, False),
        ("promoted", "champion", 1, 2, False),
        ("promoted", "champion", 2, 3, True),
        ("rolled_back", "champion", 3, 2, False),
        ("alias_set", "shadow", None, 1, False),
    ]
    assert history[4].reason == "hotfix, gates are wrong" and {e.actor for e in history} == {
        "ann"}
    assert [e.at for e in history] == sorted(e.at for e in history)
    lines = (Path(registry.root) / MODEL / "history.jsonl").read_text().splitlines()
    assert len(lines) == len(history)


def test_rollback_follows_the_history_not_version_order(
    tmp_path: Path, registry: ModelRegistry
) -> None:
    for n in (1, 2, 3):
        _register(registry, tmp_path, n, promoted=True)
    for n in (1, 3, 2):
        registry.promote(MODEL, n)
    assert registry.rollback(MODEL, "2 misbehaves") == 3  # "older promoted" would say 1
    assert registry.rollback(MODEL) == 1
    with pytest.raises(RegistryError, match="no promoted version before champion 1"):
        registry.rollback(MODEL)
    assert registry.alias(MODEL) == 1


def test_rollback_skips_rejected_versions(tmp_path: Path, registry: ModelRegistry) -> None:
    for n in (1, 2, 3):
        _register(registry, tmp_path, n)
        registry.promote(MODEL, n)
    registry.reject(MODEL, 2, "leaks labels")
    assert registry.rollback(MODEL) == 1
    assert registry.history(MODEL)[-1].from_version == 3


def test_promote_refuses_a_version_whose_gates_failed(
    tmp_path: Path, registry: ModelRegistry
) -> None:
    _register(registry, tmp_path, 1, gates=FAILED)
    with pytest.raises(RegistryError, match=r"gates failed \(roc_auc 0.61 < min 0.75\)"):
        registry.promote(MODEL, 1)
    with pytest.raises(RegistryError, match="forced promotion needs a reason"):
        registry.promote(MODEL, 1, force=True)
    assert registry.alias(MODEL) is None and registry.history(MODEL) == []
    entry = registry.promote(MODEL, 1, force=True, reason="incident 42")
    assert registry.alias(MODEL) == 1 and entry.forced and entry.reason == "incident 42"


def test_diff(tmp_path: Path, registry: ModelRegistry) -> None:
    _register(registry, tmp_path, 1, params={"eta": 0.1, "depth": 4},
              dataset={"version": 1, "rows": 100}, lineage={"dataset_version": 1})
    _register(registry, tmp_path, 2, params={"eta": 0.2, "depth": 4, "trees": 50},
              dataset={"version": 2, "rows": 100}, lineage={"dataset_version": 2})
    registry.promote(MODEL, 1)
    diff = registry.diff(MODEL, "champion", 2)
    assert (diff.a, diff.b) == (1, 2)
    assert diff.metrics["roc_auc"].delta == pytest.approx(0.01)
    assert diff.params.changed == {"eta": {"a": 0.1, "b": 0.2}}
    assert diff.params.added == {"trees": 50} and not diff.params.removed
    assert diff.dataset.changed == {"version": {"a": 1, "b": 2}}
    assert diff.lineage.changed == {"dataset_version": {"a": 1, "b": 2}}
    assert set(diff.files.changed) == {"model.ubj", "model_card.md"}
    assert not diff.other


# -- concurrency ----------------------------------------------------------------------------------


def _register_many(root: str, kind: str, worker: int, count: int, barrier: Any) -> None:
    """Spawned process: wait for the others, then register ``count`` versions."""
    registry = _open(root, kind)
    barrier.wait(60)
    for i in range(count):
        source = Path(root) / "sources" / f"w{worker}-{i}"
        source.mkdir(parents=True)
        (source / "model.ubj").write_bytes(f"worker {worker} model {i}".encode())
        registry.register(MODEL, source, gates=PASSED, card=None, params={"worker": worker})


def test_concurrent_registrations_get_distinct_complete_versions(
    tmp_path: Path, kind: str
) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_register_many, args=(str(tmp_path), kind, w, 3, barrier))
             for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    registry = _open(str(tmp_path), kind)
    assert registry.version_numbers(MODEL) == list(range(1, 13))
    contents = set()
    for v in registry.versions(MODEL):
        path = registry.artifact_path(MODEL, v.version, "model.ubj")  # sha256 matches metadata
        contents.add(path.read_bytes())
        assert path.read_bytes().startswith(f"worker {v.params['worker']} ".encode())
    assert len(contents) == 12  # nobody overwrote anybody


def test_an_explicit_version_number_is_never_taken_twice(
    tmp_path: Path, registry: ModelRegistry
) -> None:
    _register(registry, tmp_path, 1, version=5)
    with pytest.raises(RegistryError, match="version 5 already exists"):
        _register(registry, tmp_path, 2, version=5)
    assert registry.version_numbers(MODEL) == [5] and registry.next_version(MODEL) == 6


# -- the CLI ---------------------------------------------------------------------------------------


def _cli(settings: Settings, *argv: str) -> tuple[int, list[RegistryEvent]]:
    parser = argparse.ArgumentParser(prog="fti")
    add_registry_parser(parser.add_subparsers(dest="command"))
    events: list[RegistryEvent] = []
    code = run_registry_command(parser.parse_args(["registry", *argv]), settings, events.append)
    return code, events


@pytest.fixture
def cli_settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data")
    registry = ModelRegistry(settings.registry_dir)
    _register(registry, tmp_path, 1, reason="manual")
    _register(registry, tmp_path, 2, reason="drift", params={"eta": 0.3})
    _register(registry, tmp_path, 3, gates=FAILED)
    return settings


def test_cli_promote_rollback_publish_events(
    cli_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(cli_settings, "promote", "1")[1][0].event == "promoted"
    code, events = _cli(cli_settings, "promote", "2", "--alias", "challenger")
    assert (code, events[0].event, events[0].alias) == (0, "promoted", "challenger")
    _, events = _cli(cli_settings, "promote", "challenger", "--reason", "better recall")
    assert (events[0].version, events[0].alias) == (2, "champion")
    _, events = _cli(cli_settings, "rollback", "--reason", "alerts")
    assert (events[0].event, events[0].version) == ("rolled_back", 1)
    assert "champion is now version 1 (was 2)" in capsys.readouterr().out
    with pytest.raises(RegistryError, match="gates failed"):
        _cli(cli_settings, "promote", "3")
    code, events = _cli(cli_settings, "promote", "3", "--force", "--reason", "incident 7")
    assert code == 0 and events[0].version == 3
    history = ModelRegistry(cli_settings.registry_dir).history(MODEL)
    assert history[-1].forced and history[-1].reason == "incident 7"


def test_cli_approve_and_reject(cli_settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, events = _cli(cli_settings, "approve", "1", "--reason", "ok")
    assert code == 0
    published = "approved" in supported_event_kinds()
    assert [e.event for e in events] == (["approved"] if published else [])
    _cli(cli_settings, "reject", "2", "--reason", "bias")
    with pytest.raises(RegistryError, match="approval rejected by ann"):
        _cli(cli_settings, "promote", "2")
    assert "version 2 rejected" in capsys.readouterr().out


def test_cli_json_outputs_parse(cli_settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    _cli(cli_settings, "promote", "1")
    capsys.readouterr()
    assert _cli(cli_settings, "list", "--json")[0] == 0
    listed = json.loads(capsys.readouterr().out)
    assert [v["version"] for v in listed["versions"]] == [1, 2, 3]
    assert listed["versions"][0]["aliases"] == ["champion"] and listed["aliases"] == {
        "champion": 1}
    _cli(cli_settings, "show", "--json")
    shown = json.loads(capsys.readouterr().out)
    assert (shown["version"], shown["aliases"], shown["approval"]["status"]) == (
        1, ["champion"], "pending")
    _cli(cli_settings, "diff", "1", "2", "--json")
    diff = json.loads(capsys.readouterr().out)
    assert diff["params"]["added"] == {"eta": 0.3} and diff["metrics"]["roc_auc"]["delta"] > 0


def test_cli_tables(cli_settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    _cli(cli_settings, "promote", "2")
    capsys.readouterr()
    _cli(cli_settings, "list")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["version", "created", "(UTC)", "reason", "test", "AUC", "gates",
                                "approval", "aliases"]
    assert lines[2].split()[-1] == "champion" and "failed" in lines[3]
    _cli(cli_settings, "show", "2")
    out = capsys.readouterr().out
    assert out.startswith(f"{MODEL} version 2  (champion)") and "roc_auc=0.9200" in out
    _cli(cli_settings, "diff", "1", "champion")
    out = capsys.readouterr().out
    assert "roc_auc" in out and "+0.0100" in out and "+ eta = 0.3000" in out
    assert "~ model.ubj:" in out


def test_cli_list_of_an_empty_registry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(data_dir=tmp_path)
    assert _cli(settings, "list")[0] == 1
    assert capsys.readouterr().out.startswith(f"no versions of {MODEL} in ")
    assert _cli(settings, "list", "--json")[0] == 1
    assert json.loads(capsys.readouterr().out)["versions"] == []


def test_cli_model_option_before_or_after_the_action(cli_settings: Settings) -> None:
    parser = argparse.ArgumentParser(prog="fti")
    add_registry_parser(parser.add_subparsers(dest="command"))
    assert parser.parse_args(["registry", "--model", "m", "list"]).model == "m"
    assert parser.parse_args(["registry", "list", "--model", "m"]).model == "m"
    with pytest.raises(SystemExit):
        parser.parse_args(["registry", "reject", "1"])  # a rejection needs --reason
