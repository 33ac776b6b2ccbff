"""infra/grafana/fti-dashboard.json: loads, every panel queries the Prometheus datasource
variable, every expression parses and uses only metrics and labels fti exports or proposes,
and the panels cover the whole loop."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.test_prometheus import promtool
from tests.test_metric_catalogue import ROOT, documented_metrics, promql_problems

DASHBOARD = ROOT / "infra" / "grafana" / "fti-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
#: Grafana's interval variables, replaced by durations to parse the expressions.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}
#: Metrics the dashboard need not show, and why.
NOT_ON_DASHBOARD = {"fti_feature_newest_event_time_seconds": "the freshness panel shows it"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    """The dashboard JSON."""
    return json.loads(DASHBOARD.read_text())


def query_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that queries data (rows excluded), nested rows' panels included."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and annotation query."""
    for panel in query_panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target.get('refId')}", target.get("expr", "")
    for annotation in dashboard["annotations"]["list"]:
        if annotation.get("expr"):
            yield f"annotation {annotation['name']!r}", annotation["expr"]


def test_dashboard_is_a_grafana_dashboard_with_a_datasource_variable(
        dashboard: dict[str, Any]) -> None:
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"


def test_every_panel_has_the_datasource_and_targets(dashboard: dict[str, Any]) -> None:
    problems = []
    for panel in query_panels(dashboard):
        name = repr(panel.get("title"))
        if panel.get("datasource") != DATASOURCE:
            problems.append(f"{name}: datasource {panel.get('datasource')}, want {DATASOURCE}")
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{name}: no targets")
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or None in refs:
            problems.append(f"{name}: refIds must be present and unique, got {refs}")
        for target in targets:
            if target.get("datasource") != DATASOURCE or not target.get("expr", "").strip():
                problems.append(f"{name} {target.get('refId')}: needs the datasource and expr")
    for annotation in dashboard["annotations"]["list"]:
        if annotation.get("expr") and annotation.get("datasource") != DATASOURCE:
            problems.append(f"annotation {annotation['name']!r}: datasource")
    assert not problems, "\n".join(problems)


def test_panels_have_unique_ids_and_do_not_overlap(dashboard: dict[str, Any]) -> None:
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids), f"duplicate panel ids in {ids}"
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                other = cells.setdefault((x, y), panel["title"])
                assert other == panel["title"], f"{panel['title']!r} overlaps {other!r}"


def test_expressions_use_only_fti_metrics_and_labels(dashboard: dict[str, Any]) -> None:
    problems = [f"{where}: {problem}" for where, expr in expressions(dashboard)
                for problem in promql_problems(expr)]
    assert not problems, "\n".join(problems)


def test_dashboard_shows_the_whole_loop(dashboard: dict[str, Any]) -> None:
    text = " ".join(expr for _, expr in expressions(dashboard))
    used = set(re.findall(r"fti_\w+", text))
    shown = {name for name in documented_metrics()
             if {name, f"{name}_bucket", f"{name}_sum"} & used}
    missing = sorted(documented_metrics().keys() - shown - NOT_ON_DASHBOARD.keys())
    assert not missing, f"no panel shows {missing}"


def test_expressions_parse_as_promql(dashboard: dict[str, Any], tmp_path: Path) -> None:
    rules = []
    for number, (_, expr) in enumerate(expressions(dashboard)):
        for variable, duration in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, duration)
        assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
        rules.append({"record": f"fti:dashboard_expression_{number}", "expr": expr})
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = promtool("check", "rules", str(path)).stdout
    assert f"SUCCESS: {len(rules)} rules found" in out
