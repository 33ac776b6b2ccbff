"""Hold the champion (and challenger) of a model for a flow, following `registry.events`."""

from __future__ import annotations

import logging
import threading
import time

from fti.connectors.kafka.registry_events import RegistryEventWatcher
from fti.errors import FtiError
from fti.events import RegistryEvent
from fti.models.registry import ModelRegistry
from fti.models.serving import AliasHolder, ChallengerHolder, ChampionHolder
from fti.settings import Settings

log = logging.getLogger(__name__)


def prepare_champion(settings: Settings, model: str,
                     stop: threading.Event) -> ChampionHolder | None:
    """Follow the registry until `stop`; block until a champion of `model` is loaded (or
    time-out). Return None if `stop` was set before a champion arrived."""
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


def follow_alias(settings: Settings, model: str, alias: str,
                 stop: threading.Event | None = None) -> AliasHolder:
    """A holder of `model`'s `alias` (e.g. "challenger") that follows `registry.events`
    until `stop`; a version that cannot be loaded leaves it empty, never raises."""
    holder = ChallengerHolder(ModelRegistry(settings.registry_location), model)
    holder.alias = alias

    def on_change(event: RegistryEvent) -> None:
        if event.alias == alias:
            holder.refresh()

    watcher = RegistryEventWatcher(settings, model, on_change, stop)
    watcher.start()
    if not watcher.ready.wait(30):
        raise FtiError("could not start following registry.events within 30s")
    holder.refresh()  # after `ready`, so a promotion in between is not missed
    return holder
