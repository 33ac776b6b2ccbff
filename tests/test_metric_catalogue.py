"""docs/metrics.md lists exactly the metrics fti/metrics.py registers, with their type and labels.

Also home of the PromQL checks the dashboard and alert tests share: `promql_problems` names
every metric or label an expression uses that fti neither exports nor proposes.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from fti import metrics

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "docs" / "metrics.md"
#: Labels Prometheus adds to every series it scrapes with infra/prometheus.yml.
TARGET_LABELS = frozenset({"job", "instance", "service"})
SERVICES = frozenset({"features", "monitor", "inference", "trainer"})
TYPES = frozenset({"counter", "gauge", "histogram"})
#: Label names that would make a series per entity or per record: never on a fti metric.
UNBOUNDED_LABELS = frozenset({"card_id", "tx_id", "merchant_id", "offset", "key", "ts"})
PACKAGES = ("fti", "flows", "connectors", "features", "models", "infra", "bench")
COLLECTOR_CLASSES = frozenset({"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"})


@dataclass(frozen=True)
class MetricSpec:
    """A metric as scraped: counters by their `_total` name, histograms by their base name."""

    name: str
    type: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class DocumentedMetric:
    """One row of a catalogue table in docs/metrics.md."""

    spec: MetricSpec
    exported_by: tuple[str, ...]
    meaning: str
    proposed: bool


def scraped_name(collector: MetricWrapperBase) -> str:
    """The name Prometheus stores: prometheus_client drops a counter's `_total`, we add it."""
    suffix = "_total" if collector._type == "counter" else ""
    return collector._name + suffix


def exported_metrics() -> dict[str, MetricSpec]:
    """Every collector `fti.metrics` defines, by scraped name.

    >>> exported_metrics()["fti_events_in_total"]
    MetricSpec(name='fti_events_in_total', type='counter', labels=('flow', 'topic'))
    """
    return {
        scraped_name(c): MetricSpec(scraped_name(c), c._type, tuple(c._labelnames))
        for c in vars(metrics).values() if isinstance(c, MetricWrapperBase)
    }


def registered_fti_families() -> dict[str, str]:
    """Name -> type of every `fti_` family in the default registry (counters without `_total`)."""
    return {
        family.name: family.type for family in REGISTRY.collect()
        if family.name.startswith("fti_")
    }


def documented_metrics(text: str | None = None) -> dict[str, DocumentedMetric]:
    """The `fti_` rows of docs/metrics.md's tables; rows under a "Proposed" heading are proposed.

    >>> doc = "## Proposed\\n| `fti_x_total` | counter | `a`, `b` | trainer | Xs. |"
    >>> documented_metrics(doc)["fti_x_total"].spec.labels
    ('a', 'b')
    """
    text = CATALOGUE.read_text() if text is None else text
    found: dict[str, DocumentedMetric] = {}
    proposed = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("## "):
            proposed = "proposed" in line.lower()
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| `fti_"):
            continue
        if len(cells) != 5:
            raise AssertionError(f"docs/metrics.md:{number}: a catalogue row needs 5 cells "
                                 f"(metric | type | labels | exported by | meaning), got {cells}")
        name, kind, labels, exported_by, meaning = cells
        spec = MetricSpec(name.strip("`"), kind, tuple(re.findall(r"`([a-zA-Z_]\w*)`", labels)))
        if spec.name in found:
            raise AssertionError(f"docs/metrics.md:{number}: {spec.name} is listed twice")
        services = tuple(s.strip() for s in exported_by.split(","))
        found[spec.name] = DocumentedMetric(spec, services, meaning, proposed)
    return found


def known_series() -> dict[str, frozenset[str]]:
    """Every series name a PromQL expression may use -> the label names it may carry.

    Exported and proposed metrics with their histogram and counter suffixes, and `up`.
    """
    series: dict[str, frozenset[str]] = {"up": TARGET_LABELS}
    specs = {**{n: d.spec for n, d in documented_metrics().items()}, **exported_metrics()}
    for spec in specs.values():
        labels = frozenset(spec.labels) | TARGET_LABELS
        if spec.type == "histogram":
            series[f"{spec.name}_bucket"] = labels | {"le"}
            for suffix in ("_sum", "_count", "_created"):
                series[spec.name + suffix] = labels
        elif spec.type == "counter":
            series[spec.name] = labels
            series[spec.name.removesuffix("_total") + "_created"] = labels
        else:
            series[spec.name] = labels
    return series


_NAME = re.compile(r"(?<![\w$])(fti_\w+|up)\b(?!\s*\()")
_SELECTOR = re.compile(r"(?<![\w$])(fti_\w+|up)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


def promql_problems(expr: str) -> list[str]:
    """Metrics and labels in `expr` that fti does not export or propose, as messages.

    >>> promql_problems('sum by (flow) (rate(fti_events_in_total{topic="t"}[5m]))')
    []
    >>> promql_problems('sum by (step) (rate(fti_event_in_total[5m]))')
    ["unknown metric 'fti_event_in_total'", "label 'step' of no metric in the expression"]
    """
    series = known_series()
    names = set(_NAME.findall(expr))
    problems = [f"unknown metric {name!r}" for name in sorted(names - series.keys())]
    for name, matchers in _SELECTOR.findall(expr):
        for label in _MATCHER.findall(matchers):
            if name in series and label not in series[name]:
                problems.append(f"{name} has no label {label!r}")
    used = frozenset().union(*(series.get(n, frozenset()) for n in names))
    for group in _GROUPING.findall(expr):
        for label in filter(None, (part.strip() for part in group.split(","))):
            if label not in used:
                problems.append(f"label {label!r} of no metric in the expression")
    return problems


def test_every_metric_in_fti_metrics_is_documented() -> None:
    missing = sorted(exported_metrics().keys() - documented_metrics().keys())
    assert not missing, f"add a row to docs/metrics.md's 'Exported metrics' table for {missing}"


def test_every_documented_metric_is_exported_unless_proposed() -> None:
    exported = exported_metrics()
    gone = sorted(
        n for n, d in documented_metrics().items() if not d.proposed and n not in exported
    )
    assert not gone, (f"docs/metrics.md documents {gone}, which fti/metrics.py no longer "
                      "defines: remove the rows, or move them under 'Proposed metrics'")


def test_proposed_metrics_are_not_exported_yet() -> None:
    exported = exported_metrics()
    landed = sorted(n for n, d in documented_metrics().items() if d.proposed and n in exported)
    assert not landed, (f"{landed} are now defined in fti/metrics.py: move their rows from "
                        "'Proposed metrics' to 'Exported metrics' in docs/metrics.md")


def test_documented_type_and_labels_match_the_collectors() -> None:
    documented = documented_metrics()
    wrong = [
        f"{name}: documented {documented[name].spec.type} {documented[name].spec.labels}, "
        f"defined {spec.type} {spec.labels}"
        for name, spec in exported_metrics().items()
        if name in documented and documented[name].spec != spec
    ]
    assert not wrong, "docs/metrics.md disagrees with fti/metrics.py:\n" + "\n".join(wrong)


def test_catalogue_rows_are_well_formed() -> None:
    problems = []
    for name, doc in documented_metrics().items():
        if doc.spec.type not in TYPES:
            problems.append(f"{name}: type {doc.spec.type!r} is not one of {sorted(TYPES)}")
        if not set(doc.exported_by) <= SERVICES:
            problems.append(f"{name}: exported by {doc.exported_by}, not services "
                            f"{sorted(SERVICES)}")
        if len(doc.meaning) < 20:
            problems.append(f"{name}: say what it measures, not just {doc.meaning!r}")
    assert not problems, "\n".join(problems)


def test_registry_holds_exactly_the_module_collectors() -> None:
    families = registered_fti_families()
    by_family = {s.name.removesuffix("_total") if s.type == "counter" else s.name: s.type
                 for s in exported_metrics().values()}
    assert families == by_family, "a fti_ metric is registered outside fti/metrics.py"


def test_metric_names_and_labels_follow_the_conventions() -> None:
    problems = []
    for name, spec in exported_metrics().items():
        if not name.startswith("fti_"):
            problems.append(f"{name}: prefix every metric with fti_")
        if spec.type == "histogram" and not name.endswith("_seconds"):
            problems.append(f"{name}: histograms here measure time; end the name in _seconds")
        if bad := set(spec.labels) & UNBOUNDED_LABELS:
            problems.append(f"{name}: labels {sorted(bad)} are unbounded")
    assert not problems, "\n".join(problems)


def test_collectors_are_defined_only_in_fti_metrics() -> None:
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "fti" / "metrics.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                        "prometheus_client"):
                    names = {alias.name for alias in node.names} & COLLECTOR_CLASSES
                    if names:
                        offenders.append(f"{path.relative_to(ROOT)} imports {sorted(names)}")
    assert not offenders, ("define metrics in fti/metrics.py, the one catalogue: "
                           + "; ".join(offenders))
