"""Prometheus side of fti: promtool checks the scrape config and the alert rules, the rules'
unit tests fire on synthetic series, and a real Prometheus scrapes `fti up`.

promtool and prometheus come with Debian's `prometheus` package; `make test` installs it
through infra/install-prometheus.sh. Missing tools fail these tests, they never skip them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from fti.infra.embedded_broker import free_port
from tests.e2e.test_up import SERVICES, applied_example, logs
from tests.support import wait_for
from tests.test_metric_catalogue import ROOT, promql_problems

INFRA = ROOT / "infra"
ALERTS = INFRA / "alerts.yml"
ALERTS_TEST = INFRA / "alerts_test.yml"
SCRAPE_CONFIG = INFRA / "prometheus.yml"
INSTALL_SCRIPT = INFRA / "install-prometheus.sh"
SEVERITIES = frozenset({"critical", "warning", "info"})


def require_tool(name: str) -> str:
    """Path of `name` (promtool, prometheus); fail, never skip, when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `bash infra/install-prometheus.sh` "
                    "(`make test` runs it first); it installs Debian's `prometheus` package",
                    pytrace=False)
    return path


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `promtool ARGS` in the repository root; fail the test with its output if it fails."""
    result = subprocess.run([require_tool("promtool"), *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, (f"promtool {' '.join(args)} exited {result.returncode}:\n"
                                    f"{result.stdout}{result.stderr}")
    return result


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of infra/alerts.yml, in file order."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_alert_rules_pass_promtool_check() -> None:
    out = promtool("check", "rules", str(ALERTS.relative_to(ROOT))).stdout
    assert f"SUCCESS: {len(alert_rules())} rules found" in out


def test_scrape_config_passes_promtool_check() -> None:
    out = promtool("check", "config", str(SCRAPE_CONFIG.relative_to(ROOT))).stdout
    assert "SUCCESS: 1 rule files found" in out  # and alerts.yml is loaded from it


def test_alerts_fire_on_synthetic_series() -> None:
    out = promtool("test", "rules", str(ALERTS_TEST.relative_to(ROOT))).stdout
    assert "SUCCESS" in out


def test_every_alert_is_shown_to_fire_and_to_stay_silent() -> None:
    cases = [case for test in yaml.safe_load(ALERTS_TEST.read_text())["tests"]
             for case in test.get("alert_rule_test", [])]
    fires = {c["alertname"] for c in cases if c.get("exp_alerts")}
    silent = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    names = {rule["alert"] for rule in alert_rules()}
    assert names <= fires, f"no test in alerts_test.yml shows {sorted(names - fires)} firing"
    assert names <= silent, f"no test in alerts_test.yml shows {sorted(names - silent)} silent"


def test_every_alert_has_for_severity_and_annotations() -> None:
    problems = []
    for rule in alert_rules():
        name = rule["alert"]
        if "for" not in rule:
            problems.append(f"{name}: no `for:`")
        if rule.get("labels", {}).get("severity") not in SEVERITIES:
            problems.append(f"{name}: severity must be one of {sorted(SEVERITIES)}")
        if not {"summary", "description"} <= rule.get("annotations", {}).keys():
            problems.append(f"{name}: needs summary and description annotations")
    assert not problems, "\n".join(problems)


def test_alert_expressions_use_fti_metrics_and_labels() -> None:
    problems = [f"{rule['alert']}: {p}" for rule in alert_rules()
                for p in promql_problems(rule["expr"])]
    assert not problems, "\n".join(problems)


def test_every_alert_is_in_the_catalogue() -> None:
    text = (ROOT / "docs" / "metrics.md").read_text()
    missing = [rule["alert"] for rule in alert_rules() if f"| `{rule['alert']}` |" not in text]
    assert not missing, f"add {missing} to the Alerts table of docs/metrics.md"


def test_install_script_does_nothing_when_installed() -> None:
    require_tool("promtool")
    require_tool("prometheus")
    result = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "already installed" in result.stdout


# A real Prometheus scraping `fti up`.


class PrometheusApi:
    """The HTTP API of a Prometheus on 127.0.0.1:port."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> Any:
        """GET `path` with query `params`: the `data` of the JSON answer, None while down."""
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = json.load(response)
        except urllib.error.HTTPError as ex:
            raise AssertionError(f"{url}: HTTP {ex.code}: {ex.read().decode()}") from ex
        except OSError:
            return None
        assert body["status"] == "success", body
        return body["data"]

    def ready(self) -> bool:
        """True once Prometheus answers /-/ready with 200."""
        try:
            with urllib.request.urlopen(f"{self.base}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def query(self, promql: str) -> dict[str, float]:
        """Instant query: `service` label (or the whole label set) -> value; {} while down."""
        data = self.get("/api/v1/query", query=promql)
        if data is None:
            return {}
        return {r["metric"].get("service", json.dumps(r["metric"])): float(r["value"][1])
                for r in data["result"]}


def scrape_config(ports: dict[str, int]) -> dict[str, Any]:
    """infra/prometheus.yml's job `fti` on these ports, every second, with infra/alerts.yml."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [{
            "job_name": "fti",
            "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {"service": name}}
                               for name, port in ports.items()],
        }],
    }


@contextmanager
def process(argv: list[str], log: Path, stop_timeout_s: float, **kwargs: Any
            ) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` with output to `log`; on exit SIGTERM it and require exit code 0 in time."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, **kwargs)
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(stop_timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
                raise AssertionError(f"{argv[0]} ignored SIGTERM for {stop_timeout_s}s; "
                                     f"killed. Log: {log}") from None
    assert code == 0, f"{' '.join(argv[:3])} exited {code}:\n{log.read_text()[-3000:]}"


@pytest.mark.slow
def test_prometheus_scrapes_every_fti_service(tmp_path: Path) -> None:
    prometheus = require_tool("prometheus")
    broker_port, prom_port = free_port(), free_port()
    ports = {name: free_port() for name in SERVICES}
    env = {k: v for k, v in os.environ.items() if not k.startswith("FTI_")}
    env.update({
        "FTI_DATA_DIR": str(tmp_path / "data"),
        "FTI_BROKER__PORT": str(broker_port),
        "FTI_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{broker_port}",
        **{f"FTI_METRICS__{name.upper()}_PORT": str(port) for name, port in ports.items()},
    })
    example = applied_example("fraud", tmp_path / "fraud", env)
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(ports)))
    promtool("check", "config", str(config))
    api = PrometheusApi(prom_port)
    prom_argv = [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"]
    started = time.monotonic()
    up_argv = [sys.executable, "-m", "fti", "up", "--project", str(example.directory)]
    with process(up_argv, tmp_path / "up.out", 40, env=env, cwd=tmp_path) as up, \
            process(prom_argv, tmp_path / "prometheus.log", 30, cwd=tmp_path):
        try:
            wait_for(api.ready, timeout_s=30, what="Prometheus /-/ready")
            wait_for(lambda: api.query('up{job="fti"}') == dict.fromkeys(SERVICES, 1.0)
                     or up.poll() is not None, timeout_s=60, what="every fti target up == 1")
            assert up.poll() is None, "fti up exited early"
            wait_for(lambda: api.query('fti_events_in_total{flow="materialize"}'),
                     timeout_s=30, what="fti_events_in_total from the feature engine")
            produced = subprocess.run(
                [sys.executable, "-m", "fti", "produce", "--project",
                 str(example.directory), "--count", "300", "--bad-fraction", "0.1"],
                env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
            assert produced.returncode == 0, produced.stderr[-2000:]
            read = 'sum(fti_events_in_total{flow="materialize", topic="transactions"})'
            wait_for(lambda: api.query(read).get("{}", 0) >= 300, timeout_s=60,
                     what=f"{read} >= 300")
            wait_for(lambda: api.query("sum(fti_dlq_events_total)").get("{}", 0) > 0,
                     timeout_s=30, what="a DLQ event counted")
            alerts = {rule["alert"] for rule in alert_rules()}
            wait_for(lambda: rule_health(api) == dict.fromkeys(alerts, "ok"), timeout_s=30,
                     what="every alert rule loaded and evaluated without error")
            for expr in dashboard_expressions():
                api.get("/api/v1/query", query=expr)  # fails the test on a query error
        except AssertionError as ex:
            raise AssertionError(f"{ex}\n--- fti up\n{(tmp_path / 'up.out').read_text()[-2000:]}"
                                 f"\n{logs(tmp_path / 'data')}\n--- prometheus\n"
                                 f"{(tmp_path / 'prometheus.log').read_text()[-2000:]}") from ex
    print(f"scraped, produced, queried and stopped in {time.monotonic() - started:.1f}s")


def dashboard_expressions() -> list[str]:
    """Every PromQL expression of the Grafana dashboard, its interval variables set."""
    from tests.infra.test_grafana_dashboard import DASHBOARD, GRAFANA_VARIABLES, expressions

    found = []
    for _, expr in expressions(json.loads(DASHBOARD.read_text())):
        for variable, duration in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, duration)
        found.append(expr)
    return found


def rule_health(api: PrometheusApi) -> dict[str, str]:
    """Alert name -> health (`ok`, `err`, `unknown`) of every rule Prometheus has loaded."""
    data = api.get("/api/v1/rules") or {"groups": []}
    return {rule["name"]: rule["health"] for group in data["groups"]
            for rule in group["rules"]}
