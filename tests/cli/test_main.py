"""Tests of the `fti` command line: help for every command, config errors, empty registry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fti.cli.main import BENCHMARKS, build_parser, main

COMMANDS = [
    "broker", "produce", "flow", "trainer", "train", "registry", "store", "dataset", "bench",
    "up", "tune", "demo", "init", "plan", "apply", "materialize", "backfill", "features",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No FTI_* variable from the outside, and no ./fti.yaml."""
    for var in list(os.environ):
        if var.upper().startswith("FTI_"):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)


def _fti(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m fti ARGS` in a clean FTI_* environment, with a deadline."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("FTI_")}
    return subprocess.run(
        [sys.executable, "-m", "fti", *args], cwd=cwd, env={**clean, **env},
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_every_command_is_registered() -> None:
    subparsers = build_parser()._subparsers._group_actions[0]  # type: ignore[union-attr]
    assert sorted(subparsers.choices) == sorted(COMMANDS)


def test_top_level_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: fti")
    for command in COMMANDS:
        assert command in out


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: fti {command}")
    assert "-h, --help" in out


@pytest.mark.parametrize("argv", [[], ["nope"], ["flow", "nope"], ["registry", "drop"]])
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage: fti" in capsys.readouterr().err


def test_help_via_python_dash_m(tmp_path: Path) -> None:
    result = _fti(["--help"], tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: fti")


def test_unknown_fti_env_var_exits_2_naming_it(tmp_path: Path) -> None:
    result = _fti(["registry", "list"], tmp_path, FTI_DATA_DIR=str(tmp_path), FTI_NOPE="1")
    assert result.returncode == 2
    assert "FTI_NOPE" in result.stderr
    assert result.stderr.startswith("fti registry: unknown setting")
    assert "Traceback" not in result.stderr


def test_invalid_setting_exits_2_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FTI_MONITOR__COOLDOWN_S", "-1")
    assert main(["registry", "list"]) == 2
    assert "monitor.cooldown_s" in capsys.readouterr().err


def test_registry_list_on_an_empty_data_dir(tmp_path: Path) -> None:
    result = _fti(["registry", "list"], tmp_path, FTI_DATA_DIR=str(tmp_path))
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("no models in ")
    assert str(tmp_path / "registry") in result.stdout


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_runs_by_its_name(name: str, tmp_path: Path) -> None:
    done = _fti(["bench", name, "--help"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"fti bench {name}" in done.stdout
