"""Run a flow as a long-lived service: metrics port, graceful stop on SIGTERM / Ctrl-C."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main
from bytewax.testing import run_main

from fti import metrics
from fti.connectors.kafka.registry_events import RegistryEventWatcher
from fti.errors import FtiError
from fti.models.registry import ModelRegistry
from fti.models.serving import ChampionHolder
from fti.settings import RecoverySettings, Settings

log = logging.getLogger(__name__)

FLOWS = ("features", "monitor", "inference", "preferences")


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


def prepare_inference(settings: Settings, stop: threading.Event) -> ChampionHolder | None:
    """Follow the registry until `stop`; block until a champion is loaded (or time-out).

    Return None if `stop` was set before a champion arrived."""
    model = settings.inference.model_name
    holder = ChampionHolder(ModelRegistry(settings.registry_location), model)
    watcher = RegistryEventWatcher(settings, model, lambda _event: holder.refresh(), stop)
    watcher.start()
    if not watcher.ready.wait(30):
        raise FtiError("could not start following registry.events within 30s")
    deadline = time.monotonic() + settings.inference.wait_for_champion_s
    logged = False
    while not holder.refresh() and holder.current is None:
        if stop.is_set():
            return None
        if time.monotonic() > deadline:
            raise FtiError(
                f"no champion of {model!r} in the registry at {settings.registry_location} after "
                f"{settings.inference.wait_for_champion_s:g}s; train one with `fti train`"
            )
        if not logged:
            log.info("waiting for a champion of %s", model)
            logged = True
        stop.wait(0.5)
    return holder


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


def run_flow_service(name: str, settings: Settings, cluster: Cluster | None = None) -> None:
    """Serve metrics and run flow `name` in this process (or as one process of a cluster)
    until it is stopped."""
    from fti.flows import features, inference, monitor, preferences

    if name not in FLOWS:
        raise FtiError(f"unknown flow {name!r}; choose one of {', '.join(FLOWS)}")
    health = metrics.serve_metrics(getattr(settings.metrics, f"{name}_port"),
                                   settings.metrics.host)
    stop = stop_on_signals(on_stop=lambda: health.set_not_ready("stopping"))
    if name == "features":
        flow = features.get_flow(settings, stop)
    elif name == "monitor":
        flow = monitor.get_flow(settings, stop)
    elif name == "preferences":
        flow = preferences.get_flow(settings, stop)
    else:
        holder = prepare_inference(settings, stop)
        if holder is None:
            log.info("flow inference stopped before a champion was loaded")
            return
        flow = inference.get_flow(settings, holder, stop)
    health.set_ready(f"flow {name} running")
    log.info("flow %s running (metrics on %s:%s)", name, settings.metrics.host,
             getattr(settings.metrics, f"{name}_port"))
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
