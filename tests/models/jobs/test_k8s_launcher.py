"""Kubernetes Job manifests for training attempts (rendered only; no cluster is reached)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from fti.errors import ConfigError, FtiError
from fti.models.jobs.k8s_launcher import KubernetesJobConfig, KubernetesJobLauncher, job_name
from fti.models.jobs.launchers import JobSpec

JOB = JobSpec("fraud-xgb-ab12cd34", "fraud-xgb", "drift",
              datetime(2026, 1, 1, tzinfo=UTC), attempt=2)


def _pod(config: KubernetesJobConfig) -> dict:
    return KubernetesJobLauncher(config).render(JOB)["spec"]["template"]["spec"]


def test_cpu_job_manifest() -> None:
    launcher = KubernetesJobLauncher(KubernetesJobConfig(image="reg/fti:1", namespace="ml"))
    manifest = launcher.render(JOB)
    assert manifest["apiVersion"] == "batch/v1" and manifest["kind"] == "Job"
    assert manifest["metadata"]["name"] == "fti-train-fraud-xgb-ab12cd34-2"
    assert manifest["metadata"]["namespace"] == "ml"
    assert manifest["metadata"]["annotations"]["fti/attempt"] == "2"
    spec = manifest["spec"]
    assert spec["backoffLimit"] == 0 and spec["ttlSecondsAfterFinished"] == 3600
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert "nodeSelector" not in pod and "tolerations" not in pod
    (container,) = pod["containers"]
    assert container["image"] == "reg/fti:1"
    assert container["command"] == [
        "fti", "train", "--model", "fraud-xgb", "--reason", "drift", "--job-id", JOB.job_id
    ]
    assert container["envFrom"] == [{"configMapRef": {"name": "fti-config"}},
                                    {"secretRef": {"name": "fti-secrets"}}]
    assert {"name": "FTI_TRAINING__DEVICE", "value": "cpu"} in container["env"]
    assert container["resources"]["requests"] == {"cpu": "2", "memory": "4Gi"}
    assert yaml.safe_load(launcher.render_yaml(JOB)) == manifest


def test_gpu_job_manifest() -> None:
    pod = _pod(KubernetesJobConfig(image="fti:1", gpu=2, node_selector={"pool": "gpu"},
                                   secret=None))
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "2"
    assert {"name": "FTI_TRAINING__DEVICE", "value": "cuda"} in container["env"]
    assert container["envFrom"] == [{"configMapRef": {"name": "fti-config"}}]
    assert pod["nodeSelector"] == {"pool": "gpu"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                   "effect": "NoSchedule"}]


def test_tpu_job_manifest() -> None:
    pod = _pod(KubernetesJobConfig(image="fti:1", tpu=4, tpu_accelerator="tpu-v5p-slice",
                                   tpu_topology="2x2x1", service_account="trainer"))
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["google.com/tpu"] == "4"
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert {"name": "FTI_TRAINING__DEVICE", "value": "xla"} in container["env"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-tpu-accelerator": "tpu-v5p-slice",
                                   "cloud.google.com/gke-tpu-topology": "2x2x1"}
    assert pod["tolerations"][0]["key"] == "google.com/tpu"
    assert pod["serviceAccountName"] == "trainer"


def test_deadline_and_names() -> None:
    launcher = KubernetesJobLauncher(KubernetesJobConfig(image="fti:1", active_deadline_s=900))
    assert launcher.render(JOB)["spec"]["activeDeadlineSeconds"] == 900
    long = JobSpec("x" * 100, "m", "manual", JOB.requested_at, attempt=12)
    assert len(job_name(long)) <= 63 and job_name(long).endswith("-12")


@pytest.mark.parametrize("fields", [{"image": ""}, {"image": "i", "gpu": 1, "tpu": 1},
                                    {"image": "i", "gpu": -1}])
def test_invalid_config_is_refused(fields: dict) -> None:
    with pytest.raises(ConfigError, match="kubernetes launcher"):
        KubernetesJobConfig(**fields)


def test_launch_without_kubectl_says_what_to_install() -> None:
    launcher = KubernetesJobLauncher(KubernetesJobConfig(image="fti:1"),
                                     kubectl="kubectl-not-installed-here")
    with pytest.raises(FtiError, match="install kubectl or use the local launcher"):
        launcher.launch(JOB)
