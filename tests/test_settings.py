"""Tests of settings: defaults, env and YAML precedence, unknown keys, and Kafka config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fti.errors import ConfigError
from fti.settings import KafkaSettings, Settings, load_project_settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No FTI_* variable from the outside, and no ./fti.yaml: run in an empty directory."""
    for var in list(os.environ):
        if var.upper().startswith("FTI_"):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)


def _yaml(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    monkeypatch.setenv("FTI_CONFIG", str(path))
    return path


def test_defaults() -> None:
    s = load_settings()
    assert s.data_dir == Path(".fti")
    assert s.online_path == Path(".fti/online.db")
    assert s.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert s.kafka.client_config() == {"bootstrap.servers": "127.0.0.1:9092"}
    assert s.topics.all()[:3] == ["retrain.requests", "registry.events", "predictions"]
    assert (s.monitor.cooldown_s, s.training.model_name, s.log_level) == (20.0, None, "INFO")


def test_env_overrides_nested_and_top_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTI_KAFKA__BOOTSTRAP_SERVERS", "broker:19092")
    monkeypatch.setenv("FTI_MONITOR__COOLDOWN_S", "5")
    monkeypatch.setenv("FTI_DATA_DIR", "/srv/fti")
    s = load_settings()
    assert s.kafka.bootstrap_servers == "broker:19092"
    assert s.monitor.cooldown_s == 5.0
    assert s.monitor.volume_labels == 20000  # the rest of the section keeps its defaults
    assert s.registry_dir == Path("/srv/fti/registry")


def test_keyword_overrides_beat_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTI_LOG_LEVEL", "DEBUG")
    assert load_settings(log_level="WARNING").log_level == "WARNING"


def test_yaml_file_from_fti_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _yaml(tmp_path, "kafka:\n  bootstrap_servers: yaml:1\nmonitor:\n  cooldown_s: 7\n", monkeypatch)
    s = load_settings()
    assert (s.kafka.bootstrap_servers, s.monitor.cooldown_s) == ("yaml:1", 7.0)


def test_default_yaml_file_in_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "fti.yaml").write_text("log_level: ERROR\n")
    assert load_settings().log_level == "ERROR"


def test_env_beats_yaml_and_sections_merge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _yaml(tmp_path, "kafka:\n  bootstrap_servers: yaml:1\n  sasl_username: u\n", monkeypatch)
    monkeypatch.setenv("FTI_KAFKA__BOOTSTRAP_SERVERS", "env:2")
    s = load_settings()
    assert s.kafka.bootstrap_servers == "env:2"
    assert s.kafka.sasl_username == "u"


@pytest.mark.parametrize("var", ["FTI_KAFKA__NOPE", "FTI_NOPE", "FTI_MONITOR__COOLDOWN"])
def test_unknown_env_var_is_named(monkeypatch: pytest.MonkeyPatch, var: str) -> None:
    monkeypatch.setenv(var, "1")
    with pytest.raises(ConfigError, match=f"unknown setting.*{var}"):
        load_settings()


def test_every_unknown_env_var_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTI_NOPE", "1")
    monkeypatch.setenv("FTI_KAFKA__NOPE", "1")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "FTI_KAFKA__NOPE, FTI_NOPE" in str(info.value)


@pytest.mark.parametrize(
    ("text", "key"), [("nope: 1\n", "nope"), ("kafka:\n  nope: 1\n", "kafka.nope")]
)
def test_unknown_yaml_key_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, key: str
) -> None:
    _yaml(tmp_path, text, monkeypatch)
    with pytest.raises(ConfigError, match=rf"{key}: Extra inputs are not permitted"):
        load_settings()


@pytest.mark.parametrize("source", ["env", "yaml"])
def test_invalid_value_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    if source == "env":
        monkeypatch.setenv("FTI_MONITOR__COOLDOWN_S", "-1")
    else:
        _yaml(tmp_path, "monitor:\n  cooldown_s: -1\n", monkeypatch)
    with pytest.raises(ConfigError, match=r"monitor\.cooldown_s: .*greater than or equal to 0"):
        load_settings()


def test_fti_config_pointing_to_a_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing.yaml"
    monkeypatch.setenv("FTI_CONFIG", str(missing))
    with pytest.raises(ConfigError, match=f"FTI_CONFIG='{missing}' is not a file"):
        load_settings()


@pytest.mark.parametrize("text", ["kafka: [\n", "- just\n- a list\n"])
def test_unreadable_yaml_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    # A syntax error or a top-level list must not escape as a traceback.
    path = _yaml(tmp_path, text, monkeypatch)
    with pytest.raises(ConfigError, match=str(path.name)):
        load_settings()


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(ValueError):
        s.log_level = "DEBUG"  # type: ignore[misc]


def test_client_config_passes_sasl_and_extra_through() -> None:
    kafka = KafkaSettings(
        bootstrap_servers="b:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="alice",
        sasl_password="s3cret-pw",
        ssl_ca_location="/etc/ca.pem",
        extra={"client.id": "fti-test", "acks": "all"},
    )
    assert kafka.client_config() == {
        "bootstrap.servers": "b:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alice",
        "sasl.password": "s3cret-pw",
        "ssl.ca.location": "/etc/ca.pem",
        "client.id": "fti-test",
        "acks": "all",
    }


def test_password_from_env_is_masked_when_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTI_KAFKA__SASL_PASSWORD", "s3cret-pw")
    monkeypatch.setenv("FTI_KAFKA__EXTRA", '{"client.id": "x"}')
    s = load_settings()
    assert s.kafka.client_config()["sasl.password"] == "s3cret-pw"
    assert s.kafka.client_config()["client.id"] == "x"
    for text in (repr(s), str(s), repr(s.kafka), s.model_dump_json()):
        assert "s3cret-pw" not in text
    assert "**********" in repr(s)


def test_online_path_follows_data_dir() -> None:
    assert Settings(data_dir=Path("/d")).online_path == Path("/d/online.db")


def test_project_settings_read_the_project_yaml(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "shop"
    project.mkdir()
    (project / "fti.yaml").write_text("data_dir: state\nlog_level: ERROR\n")
    _yaml(tmp_path, "log_level: DEBUG\n", monkeypatch)  # FTI_CONFIG gives way to the project
    s = load_project_settings(project)
    assert (s.data_dir, s.log_level) == (project / "state", "ERROR")
    assert load_settings().log_level == "DEBUG"  # only while loading the project's settings


def test_project_settings_without_yaml_keep_data_dir_in_the_project(tmp_path: Path) -> None:
    assert load_project_settings(tmp_path / "p").data_dir == tmp_path / "p" / ".fti"
    assert load_project_settings(tmp_path / "p", data_dir=Path("x")).data_dir == Path("x")


def test_project_settings_data_dir_from_env_stays_as_given(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fti.yaml").write_text("data_dir: /abs/yaml\n")
    monkeypatch.setenv("FTI_DATA_DIR", "relative")
    assert load_project_settings(tmp_path).data_dir == Path("relative")


def test_project_settings_name_a_bad_project_yaml(tmp_path: Path) -> None:
    (tmp_path / "fti.yaml").write_text("data_dri: x\n")
    with pytest.raises(ConfigError, match="data_dri"):
        load_project_settings(tmp_path)
