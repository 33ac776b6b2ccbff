"""The generic monitor: drift, live performance and retrain requests for every declared
`Model` of a project (`fti.features.project.model`).

Per model, from its feature view: the **scored stream** (the stream of the view's groups),
the **label stream** (which carries the scored stream's `id` field) and the model's
predictions on `topics.predictions` (`fti.events.Prediction`, keyed by that id).

- each valid scored event gives one `FeatureObserved` per name in `Retrain.monitor`: a
  numeric (or boolean) field, a string field with declared `values` (as its index there), or
  a transformation of a view group, run on the event as the feature engine runs it;
- each label event counts towards the label volume (`LabelSeen`) and is joined by id with
  the model's prediction (keyed state that expires after `monitor.join_ttl_s`); the pair's
  error (0/1 for a wrong class, |score - actual| for regression) feeds the policy's
  performance detectors and the live metrics of the prediction's version:
  `fti_live_accuracy` and `fti_live_f1` (class 1 for binary, macro otherwise; binary also
  `fti_live_precision` and `fti_live_recall`), `fti_live_mae` and `fti_live_rmse`
  (regression), over the last `monitor.live_window` per version;
- a promotion or rollback on `topics.registry_events` is the policy's new champion;
- one `RetrainPolicy` per model (`fti.models.drift.retrain_config`: the model's `Retrain`
  on top of `settings.monitor`) writes `RetrainRequest`s to `topics.retrain_requests`, keyed
  by model name; detections are counted in `fti_drift_detections_total`.

Invalid scored or label events are skipped here (the feature engine dead-letters them);
like poison on the predictions and registry topics, they are counted in
`fti_records_skipped_total{flow="monitor"}` and never stop the flow.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from fti import metrics
from fti.connectors.kafka.reader import KafkaRecord
from fti.errors import ConfigError, EventError
from fti.events import Prediction, RegistryEvent, RetrainRequest, decode_event
from fti.features.project.decode import Event, Rejection, StreamDecoder
from fti.features.project.fields import NUMERIC, Stream
from fti.features.project.model import Model
from fti.flows.expiry import expiring_flat_map
from fti.flows.live_metrics import DEFAULT_VERSIONS_KEPT, DEFAULT_WINDOW
from fti.flows.records import SkipLog
from fti.flows.sinks import KafkaProducerSink, OutMessage
from fti.flows.sources import KafkaPartitionSource
from fti.models.drift import (
    ChampionChanged,
    ErrorObserved,
    FeatureObserved,
    LabelSeen,
    MonitorConfig,
    Observation,
    RetrainPolicy,
    retrain_config,
)
from fti.settings import Settings

if TYPE_CHECKING:
    from fti.features.project.loader import Project

FLOW = "monitor"
#: Records per source batch: a batch of one stream is decoded at once.
BATCH_RECORDS = 2000
#: Registry events that change the version serving as champion.
CHAMPION_EVENTS = frozenset({"promoted", "rolled_back"})
CLASSIFICATION = frozenset({"binary", "multiclass", "preference"})

log = logging.getLogger(__name__)
_SKIPS = SkipLog(FLOW)

Getter = Callable[[dict[str, Any]], float | None]


# --- what the monitor watches per model ------------------------------------------------------


@dataclass(frozen=True)
class Watch:
    """One model as the monitor sees it: its streams, join field, monitored values and the
    configuration of its retrain policy.

    `id_field` is None when the label stream does not carry the scored stream's id: such a
    model's labels still count towards volume, but meet no prediction (no performance).
    """

    model: Model
    scored: Stream
    labels: Stream
    id_field: str | None
    label_field: str
    monitored: tuple[tuple[str, Getter], ...]
    config: MonitorConfig

    @property
    def name(self) -> str:
        """The model's name (the policy's key and the requests' key)."""
        return self.model.name

    @property
    def task(self) -> str:
        """The model's task: binary, multiclass, preference or regression."""
        return self.model.task


def _field_getter(stream: Stream, name: str, where: str) -> Getter:
    f = stream.field_map()[name]
    if f.type in NUMERIC or f.type == "bool":
        return lambda values: None if values.get(name) is None else float(values[name])
    if f.type == "string" and f.values:
        codes = {v: float(i) for i, v in enumerate(f.values)}
        return lambda values: codes.get(values.get(name))
    raise ConfigError(f"{where}: retrain monitors {name!r}, a {f.type} field of stream "
                      f"{stream.name}; drift is watched on numbers: monitor a numeric field, a "
                      "string field with values=[...], or a numeric transformation of it")


def _run(function: Callable[[dict[str, Any]], Any]) -> Getter:
    def value(values: dict[str, Any]) -> float | None:
        out = function(dict(values))  # a copy, as the engine passes one
        return None if out is None else float(out)

    return value


def _transformation_getter(model: Model, stream: Stream, name: str, where: str) -> Getter:
    for group in model.view.groups:
        for t in group.transformations:
            if t.name != name:
                continue
            if group.stream.name != stream.name:
                raise ConfigError(f"{where}: retrain monitors transformation {name!r} of group "
                                  f"{group.name}, whose stream {group.stream.name} is not the "
                                  f"scored stream {stream.name}")
            if t.type not in NUMERIC and t.type != "bool":
                raise ConfigError(f"{where}: retrain monitors transformation {name!r}, of type "
                                  f"{t.type}; drift is watched on numbers")
            return _run(t.function)
    raise ConfigError(f"{where}: retrain monitors {name!r}, neither a field of stream "
                      f"{stream.name} nor a transformation of view {model.view.name}")


def watch(model: Model, settings: Settings) -> Watch:
    """What the monitor needs of `model`; `ConfigError` for a monitored name it cannot watch.

    >>> from fti.features.project import Field, Stream, FeatureGroup, FeatureView, Label
    >>> from fti.features.project import Model, Retrain, agg
    >>> s = Stream("s", topic="s", id="i", event_time="ts", fields=[Field("i"), Field("k"),
    ...            Field("x", "float"), Field("ts", "timestamp")])
    >>> y = Stream("y", topic="y", event_time="ts", fields=[Field("i"), Field("y", "float"),
    ...            Field("ts", "timestamp")])
    >>> g = FeatureGroup("g", entity="k", stream=s, aggregations=[agg.mean("x", window="1h")])
    >>> m = Model("m", FeatureView("v", Label("y", y, value="y"), [g]), task="regression",
    ...           retrain=Retrain(monitor=["x"], volume_labels=500, cooldown="1m"))
    >>> w = watch(m, Settings())
    >>> w.id_field, w.label_field, [n for n, _ in w.monitored], w.monitored[0][1]({"x": 2})
    ('i', 'y', ['x'], 2.0)
    >>> w.config.volume_labels, w.config.cooldown_s, w.config.features
    (500, 60.0, ('x',))
    """
    where = f"model {model.name}"
    retrain = model.retrain
    scored, labels = model.view.groups[0].stream, model.view.label.stream
    fields = scored.field_map()
    monitored = tuple(
        (name, _field_getter(scored, name, where) if name in fields
         else _transformation_getter(model, scored, name, where))
        for name in retrain.monitor)
    joinable = scored.id is not None and scored.id in labels.field_map()
    if not joinable:
        log.warning("%s: label stream %s does not carry the id field %r of stream %s; its "
                    "labels meet no prediction (no live performance, no error drift)",
                    where, labels.name, scored.id, scored.name)
    cooldown = retrain.cooldown
    assert isinstance(cooldown, timedelta)  # Retrain parses it
    config = retrain_config(
        settings.monitor, retrain.monitor, performance=retrain.performance and joinable,
        volume_labels=retrain.volume_labels, cooldown_s=cooldown.total_seconds())
    return Watch(model, scored, labels, scored.id if joinable else None,
                 model.label_column(), monitored, config)


# --- routing records to observations and to the join -----------------------------------------


@dataclass(frozen=True)
class Actual:
    """A label's value, waiting in the join for its prediction."""

    value: Any


@dataclass
class Routed:
    """What one batch of records gives: observations per model, and join items keyed by
    `join_key(model, id)`."""

    policy: dict[str, list[Observation]] = field(default_factory=lambda: defaultdict(list))
    join: list[tuple[str, Prediction | Actual]] = field(default_factory=list)


def join_key(model: str, event_id: str) -> str:
    """The join's key: a model's name and an event id (model names hold no `|`).

    >>> join_key("fare", "r1")
    'fare|r1'
    """
    return f"{model}|{event_id}"


class Router:
    """Turns a batch of records of one topic into `Routed` items; never raises."""

    def __init__(self, settings: Settings, watches: Iterable[Watch]) -> None:
        self.topics = settings.topics
        self.watches = {w.name: w for w in watches}
        self.scored_by: dict[str, list[Watch]] = defaultdict(list)
        self.labelled_by: dict[str, list[Watch]] = defaultdict(list)
        streams: dict[str, Stream] = {}
        for w in self.watches.values():
            self.scored_by[w.scored.name].append(w)
            self.labelled_by[w.labels.name].append(w)
            streams[w.scored.name], streams[w.labels.name] = w.scored, w.labels
        self.decoders: dict[str, list[StreamDecoder]] = defaultdict(list)
        for name in sorted(streams):
            self.decoders[streams[name].topic].append(StreamDecoder(streams[name]))

    def input_topics(self) -> list[str]:
        """Every topic the monitor reads, stream topics first."""
        return [*sorted(self.decoders), self.topics.predictions, self.topics.registry_events]

    def route(self, batch: list[KafkaRecord]) -> Routed:
        """Route one batch (one partition's records, so one topic)."""
        out = Routed()
        if not batch:
            return out
        topic = batch[0].topic
        if topic in self.decoders:
            now = time.time()
            for decoder in self.decoders[topic]:
                decoded = decoder.decode_batch([r.value for r in batch], now)
                for record, x in zip(batch, decoded, strict=True):
                    self._guarded(self._event, record, decoder.stream, x, out)
        elif topic == self.topics.predictions:
            for record in batch:
                self._guarded(self._prediction, record, out)
        elif topic == self.topics.registry_events:
            for record in batch:
                self._guarded(self._registry_event, record, out)
        return out

    @staticmethod
    def _guarded(step: Callable[..., None], record: KafkaRecord, *args: Any) -> None:
        try:
            step(record, *args)
        except Exception as ex:  # one record must never stop the monitor
            _SKIPS.skip(record, ex)

    def _event(self, record: KafkaRecord, stream: Stream, x: Event | Rejection,
               out: Routed) -> None:
        if isinstance(x, Rejection):
            _SKIPS.skip(record, EventError(f"{x.rule}: {x.reason}"))
            return
        values = x.values
        for w in self.scored_by.get(stream.name, ()):
            event_id = "" if stream.id is None else str(values.get(stream.id))
            observations = out.policy[w.name]
            for name, value_of in w.monitored:
                value = value_of(values)
                if value is not None and math.isfinite(value):
                    observations.append(FeatureObserved(event_id, value, name))
        for w in self.labelled_by.get(stream.name, ()):
            actual = values.get(w.label_field)
            if actual is None:
                continue  # not labelled (an optional label field on the scored stream)
            out.policy[w.name].append(LabelSeen())
            event_id = None if w.id_field is None else values.get(w.id_field)
            if event_id is not None:
                out.join.append((join_key(w.name, str(event_id)), Actual(actual)))

    def _prediction(self, record: KafkaRecord, out: Routed) -> None:
        prediction = decode_event(Prediction, record.value or b"")
        w = self.watches.get(prediction.model)
        if w is not None and w.id_field is not None:  # other models' are someone else's
            out.join.append((join_key(w.name, prediction.id), prediction))

    def _registry_event(self, record: KafkaRecord, out: Routed) -> None:
        event = decode_event(RegistryEvent, record.value or b"")
        if event.model in self.watches and event.event in CHAMPION_EVENTS:
            out.policy[event.model].append(ChampionChanged(event.version))


# --- the join and the error of a labelled prediction -----------------------------------------


def _as_class(value: Any) -> Any:
    """A class label as comparable: booleans and integral floats as ints."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def same_class(predicted: Any, actual: Any) -> bool:
    """True when a predicted class is the actual one, whatever JSON made of either.

    >>> same_class(1, True), same_class("1", 1.0), same_class(0, 2), same_class("B", "B")
    (True, True, False, True)
    """
    a, b = _as_class(predicted), _as_class(actual)
    return a == b or str(a) == str(b)


def prediction_error(task: str, prediction: Prediction, actual: Any) -> float | None:
    """The error the policy watches: 0/1 for a wrong class, |score - actual| for regression;
    None when the actual value cannot be compared (a non-numeric regression target).

    >>> from datetime import UTC, datetime
    >>> p = Prediction(id="r1", score=12.5, label=12.5, model="fare", version=1,
    ...                latency_ms=1.0, ts=datetime.now(UTC))
    >>> prediction_error("regression", p, 10), prediction_error("binary", p, 1)
    (2.5, 1.0)
    """
    if task in CLASSIFICATION:
        return 0.0 if same_class(prediction.label, actual) else 1.0
    if isinstance(actual, bool) or not isinstance(actual, int | float):
        return None
    error = abs(prediction.score - float(actual))
    return error if math.isfinite(error) else None


@dataclass(frozen=True)
class Labelled:
    """A prediction that met its label, with its error."""

    prediction: Prediction
    actual: Any
    error: float


Joined = tuple[Prediction | None, Actual | None]


def join_labels(tasks: Mapping[str, str]) -> Callable[
        [Joined | None, Prediction | Actual], tuple[Joined | None, list[Labelled]]]:
    """The join's mapper, keyed by `join_key`: emits the pair once both sides arrived (the
    latest of each), then forgets the key. `tasks` maps a model to its task."""

    def step(state: Joined | None, value: Prediction | Actual
             ) -> tuple[Joined | None, list[Labelled]]:
        prediction, actual = state or (None, None)
        if isinstance(value, Prediction):
            prediction = value
        else:
            actual = value
        if prediction is None or actual is None:
            return (prediction, actual), []
        error = prediction_error(tasks[prediction.model], prediction, actual.value)
        return None, [] if error is None else [Labelled(prediction, actual.value, error)]

    return step


# --- live performance ------------------------------------------------------------------------


@dataclass
class _Sliding:
    """The last `size` items of a window, and how many it has seen in all."""

    size: int = DEFAULT_WINDOW
    labelled_total: int = 0
    _items: deque[Any] = field(default_factory=deque, repr=False)

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"a live-metrics window needs size >= 1, got {self.size}")

    def _push(self, item: Any) -> tuple[Any, ...]:
        """Add `item`; return the item evicted to make room, if any, as a 0- or 1-tuple."""
        self._items.append(item)
        self.labelled_total += 1
        return (self._items.popleft(),) if len(self._items) > self.size else ()

    @property
    def window_count(self) -> int:
        """Pairs currently in the window (at most `size`)."""
        return len(self._items)


@dataclass
class ClassWindow(_Sliding):
    """Accuracy and F1 over the last `size` (predicted, actual) classes.

    `positive` set (binary: 1): F1, precision and recall of that class; None: macro F1 over
    the classes that occur in the window, as predicted or actual.

    >>> w = ClassWindow(size=4)
    >>> for predicted, actual in [("A", "A"), ("A", "B"), ("B", "B"), ("C", "B"), ("C", "C")]:
    ...     w.update(predicted, actual)
    >>> w.accuracy, round(w.f1, 4), w.labelled_total  # the first pair left the window
    (0.5, 0.3889, 5)
    """

    positive: Any = None
    correct: int = 0
    tp: dict[Any, int] = field(default_factory=dict)
    fp: dict[Any, int] = field(default_factory=dict)
    fn: dict[Any, int] = field(default_factory=dict)

    def update(self, predicted: Any, actual: Any) -> None:
        """Add one labelled prediction; evict the oldest once the window is full."""
        pair = (_as_class(predicted), _as_class(actual))
        if pair[0] != pair[1] and str(pair[0]) == str(pair[1]):
            pair = (pair[1], pair[1])  # "1" and 1: one class
        self._count(pair, +1)
        for old in self._push(pair):
            self._count(old, -1)

    def _count(self, pair: tuple[Any, Any], step: int) -> None:
        predicted, actual = pair
        if predicted == actual:
            self.correct += step
            _bump(self.tp, actual, step)
        else:
            _bump(self.fp, predicted, step)
            _bump(self.fn, actual, step)

    @property
    def accuracy(self) -> float | None:
        """Share of correct classes in the window (None while it is empty)."""
        n = self.window_count
        return self.correct / n if n else None

    def f1_of(self, label: Any) -> float | None:
        """F1 of one class, 2tp / (2tp + fp + fn); None when it does not occur."""
        tp, fp, fn = self.tp.get(label, 0), self.fp.get(label, 0), self.fn.get(label, 0)
        total = 2 * tp + fp + fn
        return 2 * tp / total if total else None

    @property
    def f1(self) -> float | None:
        """F1 of `positive`, or the macro F1 over the classes in the window."""
        if self.positive is not None:
            return self.f1_of(self.positive)
        scores = [self.f1_of(c) for c in {*self.tp, *self.fp, *self.fn}]
        known = [s for s in scores if s is not None]
        return sum(known) / len(known) if known else None

    @property
    def precision(self) -> float | None:
        """tp / (tp + fp) of `positive` (None without it, or without a predicted positive)."""
        tp = self.tp.get(self.positive, 0)
        predicted = tp + self.fp.get(self.positive, 0)
        return tp / predicted if self.positive is not None and predicted else None

    @property
    def recall(self) -> float | None:
        """tp / (tp + fn) of `positive` (None without it, or without an actual positive)."""
        tp = self.tp.get(self.positive, 0)
        actual = tp + self.fn.get(self.positive, 0)
        return tp / actual if self.positive is not None and actual else None


def _bump(counts: dict[Any, int], key: Any, step: int) -> None:
    n = counts.get(key, 0) + step
    if n:
        counts[key] = n
    else:
        del counts[key]


@dataclass
class ErrorWindow(_Sliding):
    """MAE and RMSE over the last `size` (predicted, actual) values.

    >>> w = ErrorWindow(size=3)
    >>> for predicted, actual in [(9.0, 1.0), (1.0, 2.0), (3.0, 1.0), (4.0, 6.0)]:
    ...     w.update(predicted, actual)
    >>> w.mae, round(w.rmse, 4), w.labelled_total
    (1.6666666666666667, 1.7321, 4)
    """

    abs_sum: float = 0.0
    sq_sum: float = 0.0

    def update(self, predicted: float, actual: float) -> None:
        """Add one labelled prediction; evict the oldest once the window is full."""
        error = abs(float(predicted) - float(actual))
        self.abs_sum += error
        self.sq_sum += error * error
        for old in self._push(error):
            self.abs_sum -= old
            self.sq_sum -= old * old
        if self.labelled_total % self.size == 0:
            # Running sums drift as values leave them: recompute them exactly now and then.
            self.abs_sum = math.fsum(self._items)
            self.sq_sum = math.fsum(e * e for e in self._items)

    @property
    def mae(self) -> float | None:
        """Mean absolute error in the window (None while it is empty)."""
        n = self.window_count
        return max(self.abs_sum, 0.0) / n if n else None

    @property
    def rmse(self) -> float | None:
        """Root mean squared error in the window (None while it is empty)."""
        n = self.window_count
        return math.sqrt(max(self.sq_sum, 0.0) / n) if n else None


Window = ClassWindow | ErrorWindow


def new_window(task: str, size: int) -> Window:
    """The live window of a task: classes (binary F1 of class 1) or errors (regression)."""
    if task == "regression":
        return ErrorWindow(size)
    return ClassWindow(size, positive=1 if task == "binary" else None)


@dataclass
class PerformanceBook:
    """One live window per version of one model, the newest `versions_kept` only."""

    task: str
    size: int = DEFAULT_WINDOW
    versions_kept: int = DEFAULT_VERSIONS_KEPT
    windows: OrderedDict[int, Window] = field(default_factory=OrderedDict)

    def update(self, pair: Labelled) -> Window:
        """Add one labelled prediction to its version's window; return that window."""
        p = pair.prediction
        window = self.windows.get(p.version)
        if window is None:
            window = self.windows[p.version] = new_window(self.task, self.size)
            while len(self.windows) > self.versions_kept:
                self.windows.popitem(last=False)
        if isinstance(window, ErrorWindow):
            window.update(p.score, float(pair.actual))
        else:
            window.update(p.label, pair.actual)
        return window


def export_window(model: str, version: int, window: Window) -> None:
    """Set one version's live gauges (a rate still undefined is left as it was) and count
    its labelled prediction."""
    labels = (model, str(version))
    if isinstance(window, ErrorWindow):
        rates = ((metrics.LIVE_MAE, window.mae), (metrics.LIVE_RMSE, window.rmse))
    else:
        rates = ((metrics.LIVE_ACCURACY, window.accuracy), (metrics.LIVE_F1, window.f1),
                 (metrics.LIVE_PRECISION, window.precision),
                 (metrics.LIVE_RECALL, window.recall))  # of class 1, binary only
    for gauge, value in rates:
        if value is not None:
            gauge.labels(*labels).set(value)
    metrics.LABELLED_PREDICTIONS.labels(*labels).inc()


def live_metrics(tasks: Mapping[str, str], size: int) -> Callable[
        [PerformanceBook | None, Labelled], tuple[PerformanceBook, Window]]:
    """The live-metrics step's mapper, keyed by model: one `PerformanceBook` per model,
    exported on every labelled prediction."""

    def step(book: PerformanceBook | None, pair: Labelled) -> tuple[PerformanceBook, Window]:
        p = pair.prediction
        book = book or PerformanceBook(tasks[p.model], size)
        window = book.update(pair)
        export_window(p.model, p.version, window)
        return book, window

    return step


# --- the policies ----------------------------------------------------------------------------


PolicyInput = tuple[str, list[Observation]]


def observe_counted(policy: RetrainPolicy, observations: Iterable[Observation],
                    now: float) -> list[RetrainRequest]:
    """Feed `observations` to `policy`; count its detections per detector and its requests
    per reason; return the requests."""
    seen = policy.detections_total
    requests = [r for obs in observations for r in policy.observe(obs, now=now)]
    new = policy.detections_total - seen
    for detection in policy.detections[-new:] if new else []:
        metrics.DRIFT_DETECTIONS.labels(policy.model, detection["detector"]).inc()
    for request in requests:
        metrics.RETRAIN_REQUESTS.labels(policy.model, request.reason).inc()
    return requests


def apply_policies(configs: Mapping[str, MonitorConfig]) -> Callable[
        [RetrainPolicy | None, PolicyInput], tuple[RetrainPolicy, list[RetrainRequest]]]:
    """The policy step's mapper, keyed by model: one `RetrainPolicy` per model with its own
    configuration (a recovered policy takes the configuration of this run)."""

    def step(policy: RetrainPolicy | None, item: PolicyInput
             ) -> tuple[RetrainPolicy, list[RetrainRequest]]:
        model, observations = item
        config = configs[model]
        if policy is None:
            policy = RetrainPolicy(model, config)
        elif policy.settings is not config:
            policy.settings = config
        return policy, observe_counted(policy, observations, time.time())

    return step


def _error_input(watches: Mapping[str, Watch]) -> Callable[[Labelled], list[tuple[str,
                                                                                  PolicyInput]]]:
    def step(pair: Labelled) -> list[tuple[str, PolicyInput]]:
        p = pair.prediction
        if not watches[p.model].config.error_detectors:
            return []  # performance is not watched for this model
        return [(p.model, (p.model, [ErrorObserved(p.id, p.version, pair.error)]))]

    return step


def _request_message(topic: str) -> Callable[[tuple[str, RetrainRequest]], OutMessage]:
    def step(item: tuple[str, RetrainRequest]) -> OutMessage:
        request = item[1]
        return topic, request.model.encode(), request.to_json()

    return step


# --- the dataflow ----------------------------------------------------------------------------


def get_flow(settings: Settings, project: Project,
             stop: threading.Event | None = None) -> Dataflow:
    """The dataflow monitoring every served model of `project` (`serve=True`; a model
    trained on demand only is not retrained by the monitor); setting `stop` ends it
    gracefully.

    Raises `ConfigError` when the project serves no model, or a model monitors a name it
    cannot watch.
    """
    served = {name: m for name, m in sorted(project.models.items()) if m.serve}
    if not served:
        raise ConfigError(f"project {project.directory} serves no model to monitor")
    watches = {name: watch(model, settings) for name, model in served.items()}
    tasks = {name: w.task for name, w in watches.items()}
    router = Router(settings, watches.values())
    flow = Dataflow(FLOW)
    records = op.input("monitor_in", flow, KafkaPartitionSource(
        settings.kafka, router.input_topics(), stop, batch_size=BATCH_RECORDS, flow=FLOW,
        batched=True))  # list[KafkaRecord], one partition's batch
    routed = op.map("route", records, router.route)
    policy_in = op.flat_map("policy_input", routed,
                            lambda r: [(m, (m, obs)) for m, obs in r.policy.items() if obs])
    join_in = op.flat_map("join_input", routed, lambda r: r.join)
    joined = expiring_flat_map("join_labels", join_in, join_labels(tasks),
                               settings.monitor.join_ttl_s)  # (join key, Labelled)
    labelled = op.map("labelled", joined, lambda kv: kv[1])
    by_model = op.key_on("key_labelled", labelled, lambda pair: pair.prediction.model)
    op.stateful_map("live_metrics", by_model, live_metrics(tasks, settings.monitor.live_window))
    # (model, Window): exported as gauges inside the step, so the stream ends here
    errors = op.flat_map("error_input", labelled, _error_input(watches))
    observations = op.merge("observations", policy_in, errors)
    configs = {name: w.config for name, w in watches.items()}
    requests = op.stateful_flat_map("retrain_policy", observations, apply_policies(configs))
    out = op.map("to_kafka", requests, _request_message(settings.topics.retrain_requests))
    op.output("requests_out", out, KafkaProducerSink(settings.kafka))
    return flow
