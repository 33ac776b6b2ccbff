"""Health, readiness and metrics of a service on one port."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from fti import metrics
from fti.health import HealthServer, serve_health_and_metrics
from fti.infra.embedded_broker import port_is_free


def get(server: HealthServer, path: str) -> tuple[int, str, str]:
    """Status, content type and body of GET `path`; error statuses are returned, not raised."""
    url = f"http://127.0.0.1:{server.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as ex:
        return ex.code, ex.headers["Content-Type"], ex.read().decode()


@pytest.fixture
def server() -> Iterator[HealthServer]:
    running = HealthServer(0).start()
    yield running
    running.stop()


def test_healthz_answers_while_the_process_is_alive(server: HealthServer) -> None:
    status, content_type, body = get(server, "/healthz")
    assert (status, content_type, json.loads(body)) == (200, "application/json", {"alive": True})


def test_readyz_is_503_until_ready_and_again_when_stopping(server: HealthServer) -> None:
    status, _, body = get(server, "/readyz")
    assert (status, json.loads(body)) == (503, {"ready": False, "reason": "starting"})
    server.set_ready("flow running")
    status, _, body = get(server, "/readyz")
    assert (status, json.loads(body)) == (200, {"ready": True, "reason": "flow running"})
    server.set_not_ready("stopping")
    status, _, body = get(server, "/readyz")
    assert (status, json.loads(body)) == (503, {"ready": False, "reason": "stopping"})


def test_metrics_serves_the_prometheus_catalogue_on_the_same_port(server: HealthServer) -> None:
    metrics.MODEL_SWAPS.labels(model="health-test").inc()
    status, content_type, body = get(server, "/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    assert "# TYPE fti_model_swaps_total counter" in body
    assert 'fti_model_swaps_total{model="health-test"} 1.0' in body


def test_unknown_paths_are_404_naming_the_known_ones(server: HealthServer) -> None:
    status, _, body = get(server, "/nope")
    assert status == 404 and "/readyz" in json.loads(body)["error"]


def test_stop_frees_the_port() -> None:
    server = HealthServer(0).start()
    port = server.port
    server.stop()
    assert port_is_free("127.0.0.1", port)


def test_port_zero_serves_nothing_but_accepts_readiness() -> None:
    server = serve_health_and_metrics(0)
    server.set_ready("trainer subscribed")
    assert not server.running and server.readiness() == (True, "trainer subscribed")
