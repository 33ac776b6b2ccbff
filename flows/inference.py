"""The inference flow of a declared model: its view's stream → features → champion → predictions.

Per source batch: decode and validate every record (`StreamDecoder`; invalid events are the
feature engine's to dead-letter, so here they are skipped and counted in
`fti_records_skipped_total{flow="inference"}`), read each group's entity states
from the online store in one lookup per group, compute each event's features with the very
code the feature engine runs (`GroupEngine.apply` on a copy of the online state, events of
one entity in the batch in order), assemble the columns the served model was trained on, score
the batch with one call and publish one `Prediction` per event (keyed by the event's id).
The champion (whatever its trainer kind) is swapped between batches when the registry
promotes another version, so no event is dropped or scored twice; with `shadow` on, the
challenger scores the same matrix into the shadow topic.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Dataflow

from fti import metrics
from fti.connectors.kafka.reader import KafkaRecord
from fti.connectors.online import open_online_store
from fti.errors import EventError
from fti.events import Prediction
from fti.features.errors import DefinitionError
from fti.features.project.decode import Event, StreamDecoder
from fti.features.project.engine import EntityState, GroupEngine
from fti.features.project.fields import Stream
from fti.features.project.model import Model
from fti.flows.champion import follow_alias, prepare_champion
from fti.flows.live_metrics import count_shadow
from fti.flows.records import SkipLog
from fti.flows.sinks import KafkaProducerSink, OutMessage
from fti.flows.sources import KafkaPartitionSource
from fti.models.serving import AliasHolder, ChampionHolder, ServingModel, count_shadow_error
from fti.settings import Settings

if TYPE_CHECKING:
    from fti.features.project.loader import Project

log = logging.getLogger(__name__)

FLOW = "inference"
BATCH_RECORDS = 2000
_SKIPS = SkipLog(FLOW)


def scored_stream(model: Model) -> Stream:
    """The stream whose events a model scores: the one its view's groups compute from."""
    streams = {g.stream.name: g.stream for g in model.view.groups}
    if len(streams) != 1:
        raise DefinitionError(
            f"model {model.name}: view {model.view.name} computes from streams "
            f"{sorted(streams)}; a served model's groups must share one stream")
    stream = next(iter(streams.values()))
    if stream.id is None:
        raise DefinitionError(f"model {model.name}: stream {stream.name} declares no id field; "
                              "predictions are keyed by it: add `id=` to the stream")
    return stream


class FeatureAssembler:
    """Features of a batch of events from the online state, as the feature engine computes
    them: one `get_many` per group, then each entity's events in order through
    `GroupEngine.serve` (so the second event of an entity in a batch sees the first, and an
    event the engine already stored is not counted twice)."""

    def __init__(self, settings: Settings, model: Model) -> None:
        self.store = open_online_store(settings)
        self.engines = [GroupEngine(g, settings.state.max_window_entries)
                        for g in model.view.groups]
        self.view = model.view

    def rows(self, events: Sequence[Event]) -> list[dict[str, Any] | None]:
        """Per event, its features by view column (None: a transformation of a group raised)."""
        out: list[dict[str, Any] | None] = [{} for _ in events]
        for engine in self.engines:
            table = engine.group.table_name
            keys = [engine.entity_of(e) for e in events]
            online = self.store.get_many(sorted({f"{table}:{k}" for k in keys if k is not None}))
            states: dict[str, EntityState | None] = {}
            for i, (event, key) in enumerate(zip(events, keys, strict=True)):
                row = out[i]
                if row is None:
                    continue
                if key is None:
                    out[i] = None
                    continue
                if key not in states:
                    stored = online.get(f"{table}:{key}")
                    # Rows are read afresh per batch, so the state may be changed in place.
                    states[key] = (EntityState.from_json(stored.window)
                                   if stored is not None and stored.window else None)
                state, features = engine.serve(states[key], event)
                states[key] = state
                if not isinstance(features, dict):
                    out[i] = None
                    continue
                for name in engine.group.feature_names():
                    row[self.view.column(engine.group, name)] = features.get(name)
        return out


def matrix_of(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> np.ndarray:
    """Model inputs: one row per event, `columns` in order, missing or non-numbers as NaN.

    >>> matrix_of([{"a": 1, "b": None}, {"a": True}], ["a", "b"]).tolist()
    [[1.0, nan], [1.0, nan]]
    """
    out = np.full((len(rows), len(columns)), np.nan, dtype=np.float32)
    for i, row in enumerate(rows):
        for j, column in enumerate(columns):
            value = row.get(column)
            if isinstance(value, bool | int | float) and not (
                    isinstance(value, float) and math.isnan(value)):
                out[i, j] = float(value)
    return out


def inputs_of(rows: Sequence[dict[str, Any]], served: ServingModel) -> np.ndarray:
    """What `served` scores of `rows`: the values of its features as they are (an object
    matrix) for a model that reads text, else the numeric `matrix_of`.

    >>> class Text:
    ...     features, reads_text = ("q", "n"), True
    >>> inputs_of([{"q": "hi", "n": 2}, {}], Text()).tolist()
    [['hi', 2], [None, None]]
    """
    if served.reads_text:
        return np.array([[row.get(c) for c in served.features] for row in rows], dtype=object)
    return matrix_of(rows, served.features)


class ModelScorer:
    """Scores batches of a model's stream with the champion held at the batch's start."""

    def __init__(self, settings: Settings, model: Model, champion: ChampionHolder,
                 challenger: AliasHolder | None = None, shadow: bool = False) -> None:
        self.model, self.champion, self.challenger = model, champion, challenger
        self.shadow = shadow
        self.stream = scored_stream(model)
        self.decoder = StreamDecoder(self.stream)
        self.features = FeatureAssembler(settings, model)
        self.topic = settings.topics.predictions
        self.shadow_topic = settings.topics.shadow_predictions
        self._failed_versions: set[int] = set()

    def __call__(self, batch: list[KafkaRecord]) -> list[OutMessage]:
        started = time.perf_counter()
        served = self.champion.current  # fixed for the whole batch
        if served is None:
            raise RuntimeError("the inference flow started without a champion model")
        decoded = self.decoder.decode_batch([r.value for r in batch], time.time())
        events: list[Event] = []
        for record, x in zip(batch, decoded, strict=True):
            if isinstance(x, Event):
                events.append(x)
            else:  # the feature engine dead-letters it; here it is counted, not scored
                _SKIPS.skip(record, EventError(f"{x.rule}: {x.reason}"))
        if not events:
            return []
        rows = self.features.rows(events)
        kept = [(e, r) for e, r in zip(events, rows, strict=True) if r is not None]
        if not kept:
            return []
        scores = served.score(inputs_of([r for _, r in kept], served))
        latency_ms = (time.perf_counter() - started) * 1000
        kept_events = [e for e, _ in kept]
        out = self._messages(self.topic, served, kept_events, scores, latency_ms)
        metrics.PREDICTIONS.labels(served.name, str(served.version)).inc(len(out))
        metrics.PREDICTION_LATENCY_SECONDS.observe(latency_ms / 1000)
        if self.shadow and self.challenger is not None:
            out.extend(self._shadow(kept, served, scores))
        return out

    def _messages(self, topic: str, served: ServingModel, events: Sequence[Event],
                  scores: np.ndarray, latency_ms: float) -> list[OutMessage]:
        now = datetime.now(UTC)
        decisions = served.decide(scores, self.model.threshold)
        id_field = self.stream.id
        assert id_field is not None
        out: list[OutMessage] = []
        for event, score, decision in zip(events, scores, decisions, strict=True):
            event_id = str(event.values.get(id_field))
            value = float(np.max(score)) if np.ndim(score) else float(score)
            prediction = Prediction(id=event_id, score=value, label=decision, model=served.name,
                                    version=served.version, latency_ms=latency_ms, ts=now)
            out.append((topic, event_id.encode(), prediction.to_json()))
        return out

    def _shadow(self, kept: Sequence[tuple[Event, dict[str, Any]]], champion: ServingModel,
                champion_scores: np.ndarray) -> list[OutMessage]:
        challenger = self.challenger.current if self.challenger else None
        if challenger is None:
            return []
        try:
            started = time.perf_counter()
            scores = challenger.score(inputs_of([r for _, r in kept], challenger))
            out = self._messages(self.shadow_topic, challenger, [e for e, _ in kept], scores,
                                 (time.perf_counter() - started) * 1000)
        except Exception as ex:  # noqa: BLE001 - the champion's predictions must still go out
            count_shadow_error(challenger.name, "score")
            if challenger.version not in self._failed_versions:
                self._failed_versions.add(challenger.version)
                log.warning("shadow scoring with %s v%d failed (logged once per version): %r",
                            challenger.name, challenger.version, ex)
            return []
        mine = challenger.decide(scores, self.model.threshold)
        theirs = champion.decide(champion_scores, self.model.threshold)
        agreed = sum(1 for a, b in zip(mine, theirs, strict=True) if a == b)
        count_shadow(challenger.name, challenger.version, len(out), agreed)
        return out


def served_models(project: Project, names: Sequence[str] | None = None) -> list[Model]:
    """The project's models to serve: `names`, or every model declared with `serve=True`."""
    chosen = list(names) if names else sorted(n for n, m in project.models.items() if m.serve)
    unknown = [n for n in chosen if n not in project.models]
    if unknown:
        raise DefinitionError(f"unknown models {unknown}; the project declares "
                              f"{sorted(project.models) or 'none'}")
    return [project.models[n] for n in chosen]


def get_flow(settings: Settings, project: Project, champions: dict[str, ChampionHolder],
             stop: threading.Event | None = None, shadow: bool | None = None) -> Dataflow:
    """The inference dataflow for every model in `champions` (name -> a holder that already
    has a model); `shadow` (default `settings.inference.shadow`) also scores challengers."""
    shadow = settings.inference.shadow if shadow is None else shadow
    flow = Dataflow(FLOW)
    for name in sorted(champions):
        model = project.models[name]
        stream = scored_stream(model)
        challenger = follow_alias(settings, name, "challenger", stop) if shadow else None
        records = op.input(f"{name}_in", flow, KafkaPartitionSource(
            settings.kafka, [stream.topic], stop, batch_size=BATCH_RECORDS, flow=FLOW,
            batched=True))
        scorer = ModelScorer(settings, model, champions[name], challenger, shadow)
        # A raising batch stops the flow: it restarts from its snapshot and scores the batch
        # again, where skipping it would lose its events.
        predictions = op.flat_map(f"{name}_score", records, scorer)
        op.output(f"{name}_out", predictions, KafkaProducerSink(settings.kafka))
    return flow


def prepare(settings: Settings, project: Project, names: Sequence[str] | None,
            stop: threading.Event) -> dict[str, ChampionHolder] | None:
    """Champion holders for the models to serve, each loaded (blocks until each has a
    champion; None if `stop` was set first)."""
    holders: dict[str, ChampionHolder] = {}
    for model in served_models(project, names):
        holder = prepare_champion(settings, model.name, stop)
        if holder is None:
            return None
        holders[model.name] = holder
    return holders
