"""`fti registry`: promote, rollback, approve and reject publish events; list, show and diff as
tables and JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from fti.cli.registry import add_registry_parser, run_registry_command
from fti.errors import RegistryError
from fti.events import RegistryEvent
from fti.models.registry import ModelRegistry
from fti.models.registry.history import supported_event_kinds
from fti.settings import Settings
from tests.models.registry.support import FAILED, MODEL, _register


@pytest.fixture(autouse=True)
def user(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("USER", "ann")
    return "ann"


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
    assert capsys.readouterr().out.startswith("no models in ")
    assert _cli(settings, "list", "--model", MODEL)[0] == 1
    assert capsys.readouterr().out.startswith(f"no versions of {MODEL} in ")
    with pytest.raises(RegistryError, match="no models in .*nothing to promote"):
        _cli(settings, "promote", "1")
    assert _cli(settings, "list", "--model", MODEL, "--json")[0] == 1
    assert json.loads(capsys.readouterr().out)["versions"] == []


def test_cli_model_option_before_or_after_the_action(cli_settings: Settings) -> None:
    parser = argparse.ArgumentParser(prog="fti")
    add_registry_parser(parser.add_subparsers(dest="command"))
    assert parser.parse_args(["registry", "--model", "m", "list"]).model == "m"
    assert parser.parse_args(["registry", "list", "--model", "m"]).model == "m"
    with pytest.raises(SystemExit):
        parser.parse_args(["registry", "reject", "1"])  # a rejection needs --reason


def test_without_model_the_only_registered_one_is_meant_and_several_must_be_named(
        cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = ModelRegistry(cli_settings.registry_dir)
    assert registry.model_names() == [MODEL]
    assert _cli(cli_settings, "list")[0] == 0 and "      3  " in capsys.readouterr().out
    source = tmp_path / "other"
    source.mkdir()
    (source / "model.bin").write_bytes(b"\x01" * 8)
    registry.register("other-model", source, gates={"passed": True, "reasons": []}, card=None)
    assert registry.model_names() == sorted([MODEL, "other-model"])
    with pytest.raises(RegistryError, match=f"holds {'.*'.join(sorted([MODEL, 'other-model']))}"):
        _cli(cli_settings, "list")
    assert _cli(cli_settings, "list", "--model", "other-model")[0] == 0
