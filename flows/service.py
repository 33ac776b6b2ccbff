"""Run a flow as a long-lived service: metrics port, graceful stop on SIGTERM / Ctrl-C."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main
from bytewax.testing import run_main

from fti import metrics
from fti.errors import FtiError
from fti.features.project.loader import Project
from fti.flows import inference, materialize, monitor
from fti.settings import RecoverySettings, Settings

log = logging.getLogger(__name__)

FLOWS = ("materialize", "monitor", "inference")
#: Flows whose metrics port is another's: materialize is the features service of a project.
_PORT_OF = {"materialize": "features"}


def stop_on_signals(on_stop: Callable[[], None] | None = None) -> threading.Event:
    """An event set by the first SIGTERM or SIGINT (calling `on_stop` first); a second SIGINT
    interrupts at once."""
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.info("received %s, draining", signal.Signals(signum).name)
        if on_stop is not None:
            on_stop()
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def recovery_config(settings: RecoverySettings, flow_name: str) -> RecoveryConfig | None:
    """Bytewax recovery for `flow_name` under `settings.dir/<flow>`, created on first use."""
    if settings.dir is None:
        return None
    db_dir = Path(settings.dir) / flow_name
    if not db_dir.is_dir() or not any(db_dir.iterdir()):
        db_dir.mkdir(parents=True, exist_ok=True)
        init_db_dir(db_dir, 1)
    return RecoveryConfig(str(db_dir), backup_interval=timedelta(seconds=settings.backup_s))


@dataclass(frozen=True)
class Cluster:
    """Where this process sits in a Bytewax cluster: `process_id` of `addresses` (one
    host:port per process), `workers` threads each. No addresses: a single process."""

    process_id: int = 0
    addresses: tuple[str, ...] = ()
    workers: int = 1


def run_flow_service(name: str, settings: Settings, cluster: Cluster | None = None,
                     project: Project | None = None, models: Sequence[str] = ()) -> None:
    """Serve metrics and run flow `name` of `project` in this process (or as one process of
    a cluster) until it is stopped: `materialize` its feature engine, `inference` its served
    `models` (default: all), `monitor` its models' drift and performance."""
    if name not in FLOWS:
        raise FtiError(f"unknown flow {name!r}; choose one of {', '.join(FLOWS)}")
    if project is None:
        raise FtiError(f"flow {name} runs a project: pass --project DIR")
    port = getattr(settings.metrics, f"{_PORT_OF.get(name, name)}_port")
    health = metrics.serve_metrics(port, settings.metrics.host)
    stop = stop_on_signals(on_stop=lambda: health.set_not_ready("stopping"))
    if name == "materialize":
        flow = materialize.get_flow(settings, project, stop)
    elif name == "monitor":
        flow = monitor.get_flow(settings, project, stop)
    else:
        holders = inference.prepare(settings, project, models, stop)
        if holders is None:
            log.info("flow inference stopped before every champion was loaded")
            return
        flow = inference.get_flow(settings, project, holders, stop)
    health.set_ready(f"flow {name} running")
    log.info("flow %s running (metrics on %s:%s)", name, settings.metrics.host, port)
    recovery = recovery_config(settings.recovery, name)
    epoch = timedelta(seconds=settings.recovery.snapshot_s) if recovery else None
    cluster = cluster or Cluster()
    if cluster.addresses or cluster.workers > 1:
        cli_main(
            flow, workers_per_process=cluster.workers, process_id=cluster.process_id
            if cluster.addresses else None, addresses=list(cluster.addresses) or None,
            epoch_interval=epoch, recovery_config=recovery,
        )
    else:
        run_main(flow, epoch_interval=epoch, recovery_config=recovery)
    log.info("flow %s stopped", name)
