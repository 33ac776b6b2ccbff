"""`fti up`: a project's services, long-lived and supervised, until Ctrl-C / SIGTERM.

Starts the embedded broker when the configured Kafka is the embedded default and nothing
answers there (else uses the configured Kafka), creates the topics, then runs the project's
feature engine and, when it declares models, its monitor, trainer and inference services under
a `Supervisor`, each with its own `/metrics`, `/healthz` and `/readyz` port. On SIGINT or
SIGTERM it stops the services gracefully, then the broker; the exit code is 0 when every
service stopped cleanly.

If the embedded broker dies, its topics die with it (memory storage). `fti up` says so,
starts a new broker on the same port, recreates the topics and restarts the services; their
readers see the new topic ids and read the new topics from offset 0, and the offline store
keeps the new records apart from the old ones by topic id. Records the old broker held and
no service had read yet are gone with it. A broker that dies `BROKER_RESTARTS` times within
`BROKER_RESTART_WINDOW_S` is not restarted again: `fti up` stops with exit code 1.

"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from fti.connectors.kafka.clients import ensure_topic_names, ensure_topics
from fti.errors import FtiError
from fti.infra.embedded_broker import EmbeddedBroker, port_is_free
from fti.logging_setup import configure_logging
from fti.ops.supervisor import ServiceSpec, Supervisor, crashes_in_window
from fti.settings import BrokerSettings, Settings, load_settings

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 30.0
BROKER_RESTARTS = 3
BROKER_RESTART_WINDOW_S = 600.0


def project_service_specs(settings: Settings, project: Path) -> list[ServiceSpec]:
    """One `ServiceSpec` per service of `project` (`python -m fti … --project DIR` and its
    metrics/health port): the feature engine, and when it declares models the monitor,
    trainer and inference."""
    from fti.features.project.loader import load_project

    where = ("--project", str(Path(project).resolve()))
    m = settings.metrics
    specs = [ServiceSpec("materialize", (sys.executable, "-m", "fti", "materialize", *where),
                         m.features_port)]
    if load_project(project).models:
        specs += [
            ServiceSpec("monitor", (sys.executable, "-m", "fti", "flow", "monitor", *where),
                        m.monitor_port),
            ServiceSpec("trainer", (sys.executable, "-m", "fti", "trainer", *where),
                        m.trainer_port),
            ServiceSpec("inference", (sys.executable, "-m", "fti", "flow", "inference", *where),
                        m.inference_port),
        ]
    return specs


def points_at_embedded(bootstrap_servers: str, broker: BrokerSettings) -> bool:
    """True if `bootstrap_servers` is the one address the embedded broker would listen on.

    >>> points_at_embedded("127.0.0.1:9092", BrokerSettings())
    True
    >>> points_at_embedded("kafka-1:9092,kafka-2:9092", BrokerSettings())
    False
    """
    servers = [s.strip() for s in bootstrap_servers.split(",") if s.strip()]
    if len(servers) != 1:
        return False
    host, _, port = servers[0].rpartition(":")
    return port == str(broker.port) and host in {broker.host, "127.0.0.1", "localhost"}


def service_env(settings: Settings, bootstrap_servers: str) -> dict[str, str]:
    """The environment of every service: ours, plus data dir, Kafka and metrics spelled out.

    Services read the rest of their settings from the same `FTI_*` variables and YAML file.
    """
    m = settings.metrics
    return {
        **os.environ,
        "FTI_DATA_DIR": str(Path(settings.data_dir).resolve()),
        "FTI_KAFKA__BOOTSTRAP_SERVERS": bootstrap_servers,
        "FTI_METRICS__HOST": m.host,
        "FTI_METRICS__FEATURES_PORT": str(m.features_port),
        "FTI_METRICS__MONITOR_PORT": str(m.monitor_port),
        "FTI_METRICS__TRAINER_PORT": str(m.trainer_port),
        "FTI_METRICS__INFERENCE_PORT": str(m.inference_port),
        "FTI_RECOVERY__DIR": str(Path(settings.service_recovery_dir).resolve()),
        "PYTHONUNBUFFERED": "1",
    }


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set `stop` on SIGINT/SIGTERM; a second one while stopping raises KeyboardInterrupt."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.info("received %s, stopping", signal.Signals(signum).name, extra={"event": "stop"})
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    # A child inherits the signal mask, so the broker started in here ignores the terminal's
    # Ctrl-C (sent to the whole foreground process group) and stays up until the services
    # have flushed; we stop it with SIGTERM. A SIGINT that arrives meanwhile is delivered
    # to us on unblocking.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _start_broker(settings: Settings, log_dir: Path) -> EmbeddedBroker | None:
    """The embedded broker if the settings want it and nothing answers there, else None."""
    b = settings.broker
    if not points_at_embedded(settings.kafka.bootstrap_servers, b):
        log.info("using the configured Kafka at %s", settings.kafka.bootstrap_servers)
        return None
    if not port_is_free(b.host, b.port):
        log.info("a broker already answers at %s:%d; using it", b.host, b.port)
        return None
    with _sigint_blocked():
        return EmbeddedBroker(b, log_file=log_dir / "broker.log").start()


def _create_topics(settings: Settings, bootstrap_servers: str, project: Path) -> None:
    from fti.features.project.loader import load_project

    kafka = settings.kafka.model_copy(update={"bootstrap_servers": bootstrap_servers})
    ensure_topics(kafka, settings.topics)
    ensure_topic_names(kafka, load_project(project).topics(), settings.topics.partitions)


def _print_banner(settings: Settings, bootstrap: str, embedded: bool,
                  supervisor: Supervisor, project: Path) -> None:
    host = settings.metrics.host
    lines = [f"fti up: Kafka at {bootstrap} ({'embedded' if embedded else 'configured'})"]
    for spec in project_service_specs(settings, project):
        pid = supervisor.status()[spec.name].pid
        where = (f"http://{host}:{spec.health_port}/metrics  /healthz  /readyz"
                 if spec.health_port else "metrics off")
        lines.append(f"  {spec.name:<10} pid {pid}  {where}")
    lines.append(f"  logs in {supervisor.log_dir}; Ctrl-C stops everything")
    print("\n".join(lines), flush=True)


def _stop_services(supervisor: Supervisor, timeout_s: float) -> dict[str, int | None]:
    try:
        return supervisor.stop(timeout_s)
    except KeyboardInterrupt:
        log.warning("interrupted again: killing the services", extra={"event": "kill"})
        return supervisor.stop(0)


def run_up(settings: Settings, stop: threading.Event | None = None,
           stop_timeout_s: float = STOP_TIMEOUT_S, project: Path = Path(".")) -> int:
    """Run broker (if needed) and services until SIGINT/SIGTERM or `stop`; 0 on a clean stop.

    Call from the main thread (it installs signal handlers, restored on return).
    """
    stop = stop or threading.Event()
    log_dir = Path(settings.data_dir) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    broker_lost = False
    codes: dict[str, int | None] = {}
    with _stop_on_signals(stop):
        broker = _start_broker(settings, log_dir)
        try:
            bootstrap = broker.bootstrap_servers if broker else settings.kafka.bootstrap_servers
            if broker is not None:
                # A new embedded broker starts empty (memory storage): offsets snapshotted
                # against an earlier one would skip its records.
                shutil.rmtree(settings.service_recovery_dir, ignore_errors=True)
            _create_topics(settings, bootstrap, project)
            if stop.is_set():
                return 0
            supervisor = _start_services(settings, bootstrap, log_dir, project)
            deaths: list[float] = []
            try:
                _print_banner(settings, bootstrap, broker is not None, supervisor, project)
                while not stop.wait(0.5):
                    if broker is None or broker.exit_code() is None:
                        continue
                    deaths.append(time.monotonic())
                    broker = _replace_broker(settings, broker, log_dir, deaths)
                    if broker is None:
                        broker_lost = True
                        break
                    _create_topics(settings, bootstrap, project)
                    log.warning("topics recreated on the new broker; restarting the services",
                                extra={"event": "broker_restarted"})
                    codes = _stop_services(supervisor, stop_timeout_s)
                    log.info("services before the broker restart stopped: %s", codes)
                    supervisor = _start_services(settings, bootstrap, log_dir, project)
            finally:
                codes = _stop_services(supervisor, stop_timeout_s)
        finally:
            if broker is not None:
                stop.set()
                broker.stop()
    clean = all(code == 0 for code in codes.values()) and not broker_lost
    log.log(logging.INFO if clean else logging.ERROR, "services stopped: %s%s", codes,
            "" if clean else f" (logs in {log_dir})", extra={"event": "stopped"})
    return 0 if clean else 1


def _start_services(settings: Settings, bootstrap: str, log_dir: Path,
                    project: Path) -> Supervisor:
    return Supervisor(project_service_specs(settings, project),
                      service_env(settings, bootstrap),
                      log_dir).start()


def _replace_broker(settings: Settings, dead: EmbeddedBroker, log_dir: Path,
                    deaths: list[float]) -> EmbeddedBroker | None:
    """A new embedded broker in place of `dead`; None when it died too often or cannot start."""
    recent = crashes_in_window(deaths, time.monotonic(), BROKER_RESTART_WINDOW_S)
    if recent > BROKER_RESTARTS:
        log.error("the embedded broker exited with code %s, %d times within %.0f s; not "
                  "restarting it again: stopping (see %s)", dead.exit_code(), recent,
                  BROKER_RESTART_WINDOW_S, log_dir / "broker.log", extra={"event": "broker_lost"})
        return None
    log.error("the embedded broker exited with code %s: its topics and every record not yet "
              "read are gone (it keeps them in memory). Starting a new one on %s and "
              "recreating the topics; services will read them from offset 0 (see %s)",
              dead.exit_code(), dead.bootstrap_servers, log_dir / "broker.log",
              extra={"event": "broker_lost"})
    try:
        with _sigint_blocked():
            return EmbeddedBroker(settings.broker, log_file=log_dir / "broker.log").start()
    except FtiError as ex:
        log.error("could not start a new embedded broker: %s; stopping", ex,
                  extra={"event": "broker_lost"})
        return None


def main() -> None:
    """Load settings, set up logging and run `run_up` on the project in the current
    directory; exit with its code."""
    try:
        settings = load_settings()
        configure_logging(settings.log_level, settings.log_format, service="up")
        sys.exit(run_up(settings, project=Path(".")))
    except FtiError as ex:
        print(f"fti up: {ex}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
