"""`fti init`, `fti plan` and `fti apply` on real project directories: the whole story as the
user runs it (`python -m fti` in a subprocess), error cases in this process (faster)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fti.cli.main import main


def fti(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m fti ARGS` in `cwd` with no FTI_* variable from outside, plus `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("FTI_")}
    return subprocess.run([sys.executable, "-m", "fti", *args], cwd=cwd, env={**clean, **env},
                          capture_output=True, text=True, timeout=120, check=False)


def edit(path: Path, *replacements: tuple[str, str]) -> None:
    """Replace each (old, new) in the file; every old must be there."""
    text = path.read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text)


def one_line_error(result: subprocess.CompletedProcess[str], command: str) -> str:
    """The error of a command that failed with exit 2: one line on stderr, no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"fti {command}: ")
    return result.stderr.strip()


def test_help_lists_init_plan_and_apply(tmp_path: Path) -> None:
    out = fti("--help", cwd=tmp_path).stdout
    for command, words in (("init", "Start a project"), ("plan", "Show what changed"),
                           ("apply", "Record the project's definitions")):
        line = next(x for x in out.splitlines() if x.strip().startswith(f"{command} "))
        assert words in line
    plan_help = fti("plan", "--help", cwd=tmp_path)
    assert plan_help.returncode == 0 and "--project DIR" in plan_help.stdout


def test_init_plan_apply_edit_and_bump(tmp_path: Path) -> None:
    shop = tmp_path / "shop"
    init = fti("init", "shop", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert "created shop/definitions.py" in init.stdout
    assert "fti plan --project shop" in init.stdout

    first = fti("plan", "--project", "shop", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "+ group merchant_activity v1 (entity merchant_id" in first.stdout
    assert first.stdout.rstrip().endswith("Plan: 7 to add, 0 to change, 0 to remove.")

    applied = fti("apply", "--project", "shop", cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    assert "applied definitions v1 (sha256 " in applied.stdout
    assert (shop / ".fti" / "definitions" / "current").read_text() == "v1\n"
    again = fti("plan", cwd=shop)  # the current directory by default
    assert again.stdout.rstrip().endswith("No changes.")

    definitions = shop / "definitions.py"
    edit(definitions, ('    description="How a customer pays.",',
                       '    ttl="1d",\n    description="How a customer pays.",'))
    changed = fti("plan", "--project", "shop", cwd=tmp_path)
    assert changed.returncode == 0, changed.stderr
    assert "~ group customer_activity v1:\n    ttl: 604800 -> 86400\n" in changed.stdout
    assert changed.stdout.rstrip().endswith("Plan: 0 to add, 1 to change, 0 to remove.")

    edit(definitions, ('        agg.sum("amount", window="1h"),\n',
                       '        agg.sum("amount", window="1h"),\n'
                       '        agg.std("amount", window="1h"),\n'))
    breaking = fti("plan", "--project", "shop", cwd=tmp_path)
    error = one_line_error(breaking, "plan")
    assert ("group merchant_activity v1: aggregations changed (+ amount_std_1h); this changes "
            "the offline table, so bump version=2") in error
    assert "view payment_risk v1: features changed" in error
    assert "invalid: 2 errors." in breaking.stdout
    refused = fti("apply", "--project", "shop", cwd=tmp_path)
    assert "bump version=2" in one_line_error(refused, "apply")
    assert not (shop / ".fti" / "definitions" / "v2.json").exists()

    edit(definitions, ('    description="How busy', '    version=2,\n    description="How busy'),
         ('ttl="7d"\n)', 'ttl="7d", version=2\n)'))
    bumped = fti("apply", "--project", "shop", cwd=tmp_path)
    assert bumped.returncode == 0, bumped.stderr
    assert "~ group merchant_activity v1 -> v2:" in bumped.stdout
    assert "applied definitions v2 (sha256 " in bumped.stdout
    assert (shop / ".fti" / "definitions" / "current").read_text() == "v2\n"
    unchanged = fti("apply", "--project", "shop", cwd=tmp_path)
    assert "definitions unchanged: v2 stays applied" in unchanged.stdout


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """For commands run in this process: no FTI_* variable from outside, cwd in tmp_path."""
    for var in list(os.environ):
        if var.upper().startswith("FTI_"):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `fti ARGS` in this process: exit code, stdout, stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def error_of(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The one-line error of a command that must exit 2."""
    code, _, err = run(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


@pytest.mark.usefixtures("clean_env")
def test_init_refuses_to_overwrite_unless_forced(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "init", "p")[0] == 0
    (tmp_path / "p" / "definitions.py").write_text("# mine\n")
    assert error_of(capsys, "init", "p") == (
        "fti init: p already has fti.yaml, definitions.py: keep them, or pass --force to "
        "overwrite them with the example")
    assert (tmp_path / "p" / "definitions.py").read_text() == "# mine\n"
    assert run(capsys, "init", "p", "--force")[0] == 0
    assert "payment_risk" in (tmp_path / "p" / "definitions.py").read_text()


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(("source", "expected"), [
    ("x = (\n", "definitions.py:1: SyntaxError: '(' was never closed"),
    ("from fti.features.project import *\nStream('s', topic='t', event_time='when', fields=[])\n",
     "definitions.py:2: stream s: event_time 'when' must name one of its fields of type "
     "timestamp, e.g. Field('ts', 'timestamp')"),
])
def test_a_broken_definitions_file_is_one_line_naming_file_and_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str, expected: str) -> None:
    (tmp_path / "definitions.py").write_text(source)
    assert error_of(capsys, "plan") == f"fti plan: {tmp_path.resolve() / expected}"


@pytest.mark.usefixtures("clean_env")
def test_plan_without_definitions_says_to_run_fti_init(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    error = error_of(capsys, "plan", "--project", str(tmp_path))
    assert error.endswith(f"run `fti init {tmp_path.resolve()}` to start a project")


@pytest.mark.usefixtures("clean_env")
def test_data_dir_from_the_project_yaml_is_relative_to_the_project(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(capsys, "init", "p")[0] == 0
    (tmp_path / "p" / "fti.yaml").write_text("data_dir: state\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert run(capsys, "apply", "--project", str(tmp_path / "p"))[0] == 0
    assert (tmp_path / "p" / "state" / "definitions" / "v1.json").is_file()
    assert list(elsewhere.iterdir()) == []
    # The environment still wins, relative to the working directory.
    monkeypatch.setenv("FTI_DATA_DIR", "here")
    assert run(capsys, "apply", "--project", str(tmp_path / "p"))[0] == 0
    assert (elsewhere / "here" / "definitions" / "v1.json").is_file()


@pytest.mark.usefixtures("clean_env")
def test_an_unknown_setting_in_the_project_yaml_exits_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "init", "p")[0] == 0
    (tmp_path / "p" / "fti.yaml").write_text("data_dri: state\n")
    assert "data_dri" in error_of(capsys, "plan", "--project", "p")
