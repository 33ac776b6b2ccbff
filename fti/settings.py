"""One settings object for every fti service: env vars ``FTI_*`` and an optional YAML file.

Precedence, highest first: keyword arguments, environment (``FTI_KAFKA__BOOTSTRAP_SERVERS``,
nested with ``__``), the YAML file (``FTI_CONFIG`` or ``./fti.yaml`` when present), defaults.
Unknown keys, in the YAML file or as ``FTI_*`` variables, are an error at start-up.

>>> s = Settings(data_dir="/tmp/x")
>>> str(s.online_path)
'/tmp/x/online.db'
>>> s.topics.predictions
'predictions'
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from fti.errors import ConfigError

#: The YAML file of the project being loaded by `load_project_settings`, if any.
_PROJECT_CONFIG: ContextVar[Path | None] = ContextVar("fti_project_config", default=None)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Section):
    """Where the broker is and how to talk to it; any Kafka works, the embedded one by default."""

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: str | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    # Tansu makes a consumer-group join wait about half the session timeout.
    session_timeout_ms: int = Field(6000, ge=1000)
    # Tansu answers a fetch only when fetch.wait.max.ms expires, not when data arrives, so the
    # librdkafka default (500 ms) is the latency floor there; on Apache Kafka, raising it
    # only saves idle fetch requests.
    fetch_wait_max_ms: int = Field(10, ge=1)
    extra: dict[str, str] = Field(
        default_factory=dict, description="Extra librdkafka properties, passed through as given."
    )

    def client_config(self) -> dict[str, Any]:
        """Return librdkafka properties shared by producers and consumers.

        >>> KafkaSettings(sasl_username="u", sasl_password="p").client_config()["sasl.password"]
        'p'
        """
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers}
        optional = {
            "security.protocol": self.security_protocol,
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password.get_secret_value() if self.sasl_password else None,
            "ssl.ca.location": self.ssl_ca_location,
        }
        config.update({k: v for k, v in optional.items() if v is not None})
        config.update(self.extra)
        return config


class TopicSettings(_Section):
    """fti's own topic names (DESIGN.md "Topics") and how many partitions `fti broker` creates.

    A project's streams name their own topics and dead-letter topics in its definitions."""

    retrain_requests: str = "retrain.requests"
    registry_events: str = "registry.events"
    predictions: str = "predictions"
    shadow_predictions: str = "predictions.shadow"
    training_jobs: str = "training.jobs"
    partitions: int = Field(1, ge=1)

    def all(self) -> list[str]:
        """Every topic name, in a stable order."""
        return [
            self.retrain_requests,
            self.registry_events,
            self.predictions,
            self.shadow_predictions,
            self.training_jobs,
        ]


class BrokerSettings(_Section):
    """The embedded Tansu broker started by `fti broker` / `fti demo`."""

    host: str = "127.0.0.1"
    port: int = Field(9092, ge=1, le=65535)
    start_timeout_s: float = 20.0


class MetricsSettings(_Section):
    """Prometheus `/metrics` ports, one per service; bound to `host` (loopback by default)."""

    host: str = "127.0.0.1"
    features_port: int = 9101
    monitor_port: int = 9102
    inference_port: int = 9103
    trainer_port: int = 9104


class DetectorSettings(_Section):
    """One drift detector of one stream (`fti.models.drift.detectors.DetectorConfig`)."""

    kind: Literal["adwin", "page_hinkley", "kswin", "psi", "ks"]
    params: dict[str, float | int | str] = Field(default_factory=dict)
    grace: int | None = Field(None, ge=0, description="None: grace_predictions")
    direction: Literal["both", "increase", "decrease"] | None = None
    name: str | None = None


class MonitorSettings(_Section):
    """When the monitor asks for a retrain: first model, label volume, drift; with a cooldown."""

    bootstrap_labels: int = Field(1000, ge=1)
    volume_labels: int = Field(20000, ge=1)
    drift_min_labels: int = Field(600, ge=0)
    cooldown_s: float = Field(20.0, ge=0)
    error_delta: float = Field(0.002, gt=0, lt=1)
    feature_delta: float = Field(0.0005, gt=0, lt=1)
    drift_feature: str = "amount"
    grace_predictions: int = Field(300, ge=0)
    drift_features: tuple[str, ...] = Field(
        (), description="More features watched with ADWIN(feature_delta): hour_of_day, ..."
    )
    feature_detectors: dict[str, tuple[DetectorSettings, ...]] = Field(
        default_factory=dict, description="Detectors per feature; replace the default ADWIN"
    )
    error_detectors: tuple[DetectorSettings, ...] = Field(
        (), description="Detectors on the live error rate (increases only); empty: ADWIN"
    )
    debounce: int = Field(1, ge=1, description="Signals needed to confirm a detection")
    debounce_within: int = Field(1000, ge=1, description="...each within this many values")
    persist: int = Field(0, ge=0, description="Or: the shift persists over this many values")
    live_window: int = Field(1000, ge=1, description="Labelled predictions in the live metrics")
    join_ttl_s: float = Field(
        86400.0, gt=0,
        description="A prediction waits this long (processing time) for its label, then is "
                    "dropped from the join state",
    )


class TrainingSettings(_Section):
    """The training job: which model, what data, which gates."""

    model_name: str | None = Field(
        None, description="The model `fti demo` and `fti registry` follow; None: the project's "
                          "only served model")
    window_labels: int = Field(6000, ge=0, description="Train on the newest N labels; 0 = all.")
    validation_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)
    seed: int = 42
    n_estimators: int = Field(200, ge=1)
    max_depth: int = Field(4, ge=1)
    learning_rate: float = Field(0.1, gt=0)
    min_auc: float = Field(0.75, ge=0, le=1)
    max_auc_regression: float = Field(0.02, ge=0, le=1)
    max_slice_gap: float | None = Field(
        None, ge=0, le=1, description="Largest recall gap allowed between slices; None: no gate"
    )
    device: str = "auto"
    launcher: Literal["local", "kubernetes"] = Field(
        "local", description="local: a subprocess per job; kubernetes: a Job per attempt"
    )
    max_attempts: int = Field(3, ge=1)
    retry_backoff_s: float = Field(5.0, ge=0)
    job_timeout_s: float = Field(3600.0, gt=0)
    k8s_namespace: str = "default"
    k8s_image: str = ""
    k8s_gpu: int = Field(0, ge=0)
    k8s_tpu: int = Field(0, ge=0)


class OnlineStoreSettings(_Section):
    """Where the online store lives: SQLite (embedded default) or Redis (production)."""

    backend: Literal["sqlite", "redis"] = "sqlite"
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "fti"
    ttl_s: float | None = Field(None, gt=0, description="Values older than this read as expired.")


class RecoverySettings(_Section):
    """Bytewax recovery of the flows: state and Kafka offsets snapshotted to `dir` every
    `snapshot_s`. Off for a bare `fti flow` unless `dir` is set; `fti up` and `fti demo`
    turn it on under `data_dir/recovery`."""

    dir: Path | None = None
    snapshot_s: float = Field(2.0, gt=0)
    backup_s: float = Field(30.0, ge=0)


class StateSettings(_Section):
    """Bounds on the feature flow's per-entity state."""

    entity_ttl_s: float = Field(
        2 * 86400.0, gt=0,
        description="An entity without events for this long (processing time) leaves the "
                    "flow's state; its online row stays",
    )
    max_window_entries: int = Field(
        100_000, ge=1, description="Events kept per entity window; the oldest go first"
    )


class InferenceSettings(_Section):
    """The inference flow: the label threshold on the score, and how long to wait for a
    champion."""

    threshold: float = Field(0.5, gt=0, lt=1)
    wait_for_champion_s: float = Field(600.0, ge=0)
    shadow: bool = Field(False, description="Also score with the challenger, to predictions.shadow")


class Settings(BaseSettings):
    """Every setting of fti, read once at start-up and passed down."""

    model_config = SettingsConfigDict(
        env_prefix="FTI_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Path(".fti")
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    broker: BrokerSettings = BrokerSettings()
    metrics: MetricsSettings = MetricsSettings()
    monitor: MonitorSettings = MonitorSettings()
    training: TrainingSettings = TrainingSettings()
    inference: InferenceSettings = InferenceSettings()
    online: OnlineStoreSettings = OnlineStoreSettings()
    recovery: RecoverySettings = RecoverySettings()
    state: StateSettings = StateSettings()
    offline_uri: str | None = Field(
        None, description="Offline store on object storage (s3://bucket/prefix); default: data_dir"
    )
    registry_uri: str | None = Field(
        None, description="Registry on object storage (s3://bucket/prefix); default: data_dir"
    )
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field(
        "text", description="text for terminals; json: one object per line (ts, level, logger, "
        "message, service, event) for log shippers"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = _config_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if yaml_file is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        return tuple(sources)

    @property
    def online_path(self) -> Path:
        """SQLite file of the online store."""
        return self.data_dir / "online.db"

    @property
    def offline_dir(self) -> Path:
        """LanceDB directory of the offline store."""
        return self.data_dir / "offline"

    @property
    def offline_location(self) -> str | Path:
        """Where the offline store lives: `offline_uri` when set, else `offline_dir`."""
        return self.offline_uri or self.offline_dir

    @property
    def service_recovery_dir(self) -> Path:
        """Recovery snapshots of the flows that `fti up` and `fti demo` run: `recovery.dir`
        when set, else `data_dir/recovery` (recovery is on by default for services)."""
        return self.recovery.dir or self.data_dir / "recovery"

    @property
    def registry_dir(self) -> Path:
        """Directory of the local model registry (under `data_dir`)."""
        return self.data_dir / "registry"

    @property
    def registry_location(self) -> str | Path:
        """Where the registry lives: `registry_uri` when set, else `registry_dir`."""
        return self.registry_uri or self.registry_dir


def _config_file() -> Path | None:
    project = _PROJECT_CONFIG.get()
    if project is not None:
        return project
    explicit = os.environ.get("FTI_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"FTI_CONFIG={explicit!r} is not a file")
        return path
    default = Path("fti.yaml")
    return default if default.is_file() else None


def _unknown_env_vars() -> list[str]:
    """FTI_* variables that name no setting (pydantic-settings would silently ignore them)."""
    top = {name.upper() for name in Settings.model_fields} | {"CONFIG"}
    unknown = []
    for var in os.environ:
        # pydantic-settings matches names case-insensitively, so check them the same way.
        if not var.upper().startswith("FTI_"):
            continue
        parts = var[4:].upper().split("__")
        if parts[0] not in top:
            unknown.append(var)
            continue
        field = Settings.model_fields[parts[0].lower()] if parts[0] != "CONFIG" else None
        section = getattr(field, "annotation", None) if field else None
        if len(parts) > 1 and isinstance(section, type) and issubclass(section, BaseModel):
            if parts[1].lower() not in section.model_fields:
                unknown.append(var)
    return unknown


def load_settings(**overrides: Any) -> Settings:
    """Read settings from env and YAML; raise `ConfigError` naming every bad or unknown key."""
    unknown = _unknown_env_vars()
    if unknown:
        raise ConfigError(f"unknown setting(s) in the environment: {', '.join(sorted(unknown))}")
    try:
        return Settings(**overrides)
    except ValidationError as ex:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in ex.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from ex
    except (yaml.YAMLError, TypeError, ValueError) as ex:
        # A YAML file that does not parse, or is not a mapping of settings.
        raise ConfigError(f"cannot read the YAML config {_config_file()}: {ex}") from ex


def settings_in(env: dict[str, str]) -> Settings:
    """The settings a child process started with environment `env` would read."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def load_project_settings(project_dir: Path | str, **overrides: Any) -> Settings:
    """Settings of the project in `project_dir`: its `fti.yaml` when it has one (in place of
    ``FTI_CONFIG`` or ``./fti.yaml``), and a relative `data_dir` not given by the environment
    or `overrides` taken from the project directory.

    >>> import tempfile
    >>> project = Path(tempfile.mkdtemp())
    >>> _ = (project / "fti.yaml").write_text("data_dir: state\\n")
    >>> load_project_settings(project).data_dir == project / "state"
    True
    """
    folder = Path(project_dir)
    config = folder / "fti.yaml"
    token = _PROJECT_CONFIG.set(config) if config.is_file() else None
    try:
        settings = load_settings(**overrides)
    finally:
        if token is not None:
            _PROJECT_CONFIG.reset(token)
    from_env = any(var.upper() == "FTI_DATA_DIR" for var in os.environ)
    if settings.data_dir.is_absolute() or from_env or "data_dir" in overrides:
        return settings
    return settings.model_copy(update={"data_dir": folder / settings.data_dir})
