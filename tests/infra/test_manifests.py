"""Kubernetes and compose manifests under infra/: they parse, name what they run, probe the
health endpoints on the metrics port, and reference files and settings that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from fti.settings import MetricsSettings, Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
COMPOSE = ROOT / "infra" / "compose"
WORKLOADS = {"Deployment", "StatefulSet", "Job"}
METRICS_PORTS = {f"fti-{name.removesuffix('_port')}": port
                 for name, port in MetricsSettings().model_dump().items() if name.endswith("_port")}


def k8s_objects() -> list[tuple[str, dict[str, Any]]]:
    """Every (file name, object) in infra/k8s."""
    objects = []
    for path in sorted(K8S.glob("*.yaml")):
        objects += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The containers of a workload's pod template."""
    return obj["spec"]["template"]["spec"]["containers"]


def launched_command(container: dict[str, Any]) -> list[str]:
    """What a container runs: its command, or for a `sh -c` wrapper the line it execs."""
    command = list(container.get("command", [])) + list(container.get("args", []))
    if command[:2] in (["/bin/sh", "-c"], ["sh", "-c"]):
        execs = [line.split("exec ", 1)[1].strip() for line in command[2].splitlines()
                 if line.strip().startswith("exec ") or " && exec " in line]
        assert len(execs) == 1, f"{container['name']}: a wrapper script ends in one `exec`"
        return execs[0].split()
    return command


def fti_setting_names(env: dict[str, str]) -> list[str]:
    """The FTI_* names in `env` that are no setting (services refuse them at start-up)."""
    top = {name.upper() for name in Settings.model_fields}
    unknown = []
    for var in env:
        if not var.startswith("FTI_") or var == "FTI_CLUSTER_SIZE":
            continue
        parts = var[4:].split("__")
        if parts[0] not in top:
            unknown.append(var)
            continue
        section = Settings.model_fields[parts[0].lower()].annotation
        fields = getattr(section, "model_fields", None)
        if len(parts) > 1 and (fields is None or parts[1].lower() not in fields):
            unknown.append(var)
    return unknown


def test_every_k8s_object_is_named_and_typed() -> None:
    objects = k8s_objects()
    assert {o["kind"] for _, o in objects} >= {
        "ConfigMap", "Secret", "Service", "StatefulSet", "Deployment", "Job", "Namespace"}
    for name, obj in objects:
        assert obj.get("apiVersion") and obj.get("kind"), name
        assert obj.get("metadata", {}).get("name"), f"{name}: {obj['kind']} without a name"


def test_every_container_runs_fti() -> None:
    for name, obj in k8s_objects():
        if obj["kind"] in WORKLOADS:
            for container in containers(obj):
                command = launched_command(container)
                assert command and command[0] == "fti", f"{name}: {container['name']} {command}"


@pytest.mark.parametrize("service", ["fti-features", "fti-inference", "fti-monitor",
                                     "fti-trainer"])
def test_services_probe_health_on_their_metrics_port(service: str) -> None:
    workload = next(o for _, o in k8s_objects()
                    if o["kind"] in WORKLOADS and o["metadata"]["name"] == service)
    port = METRICS_PORTS[service]
    annotations = workload["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    (container,) = containers(workload)
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"][
        "memory"]


@pytest.mark.parametrize(("flow", "command"), [("features", ["fti", "materialize"]),
                                               ("inference", ["fti", "flow", "inference"])])
def test_bytewax_clusters_address_every_replica(flow: str, command: list[str]) -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for _, o in k8s_objects()}
    stateful = objects[("StatefulSet", f"fti-{flow}")]
    service = objects[("Service", f"fti-{flow}")]
    assert service["spec"]["clusterIP"] == "None"
    assert stateful["spec"]["serviceName"] == f"fti-{flow}"
    (container,) = containers(stateful)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["FTI_CLUSTER_SIZE"] == str(stateful["spec"]["replicas"])
    assert launched_command(container)[:len(command)] == command
    assert "fti apply" in container["args"][0]  # the image's project, applied first
    script = container["args"][0]
    assert f"fti-{flow}-$i.fti-{flow}." in script and ":2101" in script


def test_configmap_and_secret_set_only_known_settings() -> None:
    env: dict[str, str] = {}
    for _, obj in k8s_objects():
        if obj["kind"] in ("ConfigMap", "Secret"):
            env.update(obj.get("data") or obj.get("stringData") or {})
    assert env["FTI_REGISTRY_URI"].startswith("s3://")
    assert env["FTI_ONLINE__BACKEND"] == "redis"
    assert {"FTI_KAFKA__SASL_USERNAME", "FTI_KAFKA__SASL_PASSWORD", "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY"} <= env.keys()
    assert fti_setting_names(env) == []


def test_kustomization_lists_existing_files() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert all((K8S / name).is_file() for name in kustomization["resources"])


def test_compose_references_existing_files() -> None:
    compose = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "redis", "minio", "prometheus", "grafana", "features", "monitor",
            "inference", "trainer"} <= services.keys()
    mounted = [v.split(":")[0] for s in services.values() for v in s.get("volumes", [])
               if v.startswith(".")]
    files = {(COMPOSE / m).resolve() for m in mounted}
    for expected in ("infra/prometheus.yml", "infra/alerts.yml",
                     "infra/grafana/fti-dashboard.json"):
        assert ROOT / expected in files, f"compose does not mount {expected}"
    assert all(f.is_file() for f in files), sorted(str(f) for f in files if not f.is_file())
    build = services["features"]["build"]
    assert (COMPOSE / build["context"] / build["dockerfile"]).resolve().is_file()
    for name in ("features", "monitor", "inference", "trainer"):
        line = services[name]["command"][-1]
        assert line.startswith("fti apply && exec fti "), name  # the image's project
        assert fti_setting_names(services[name]["environment"]) == []


def test_dockerfile_pins_cpu_torch_and_installs_the_project() -> None:
    text = (COMPOSE / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert "download.pytorch.org/whl/cpu torch==2.13.0" in text
    assert "pip install ." in text
