"""Training jobs as Kubernetes ``batch/v1`` Jobs: manifest rendering and `kubectl` submission.

`KubernetesJobLauncher.render` is pure (a dict ready for YAML); `launch` pipes it to
``kubectl apply -f -`` and polls ``kubectl get job``. Kubernetes never retries
(``backoffLimit: 0``): the trainer service does, with its own backoff and events.

>>> from datetime import UTC, datetime
>>> from fti.models.jobs.launchers import JobSpec
>>> launcher = KubernetesJobLauncher(KubernetesJobConfig(image="fti:1", gpu=1))
>>> job = launcher.render(JobSpec("risk-xgb-7", "risk-xgb", "drift", datetime.now(UTC)))
>>> job["spec"]["backoffLimit"], job["metadata"]["name"]
(0, 'fti-train-risk-xgb-7-1')
>>> job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
'1'
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import yaml

from fti.errors import ConfigError
from fti.models.errors import JobError
from fti.models.jobs.launchers import JobSpec, JobState

GPU_RESOURCE = "nvidia.com/gpu"
TPU_RESOURCE = "google.com/tpu"


@dataclass(frozen=True)
class KubernetesJobConfig:
    """How training pods look: image, namespace, env sources, resources, accelerators.

    `gpu` asks for that many ``nvidia.com/gpu``; `tpu` for ``google.com/tpu`` chips of
    `tpu_accelerator` in `tpu_topology` (GKE node selectors). At most one of them.
    """

    image: str
    namespace: str = "default"
    config_map: str | None = "fti-config"
    secret: str | None = "fti-secrets"
    cpu: str = "2"
    memory: str = "4Gi"
    gpu: int = 0
    tpu: int = 0
    tpu_accelerator: str = "tpu-v5-lite-podslice"
    tpu_topology: str = "1x1"
    node_selector: dict[str, str] = field(default_factory=dict)
    service_account: str | None = None
    ttl_seconds_after_finished: int = 3600
    active_deadline_s: int | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.image:
            raise ConfigError("kubernetes launcher: image must be set (e.g. registry/fti:1.0)")
        if self.gpu < 0 or self.tpu < 0:
            raise ConfigError(f"kubernetes launcher: gpu and tpu must be >= 0, got "
                              f"gpu={self.gpu}, tpu={self.tpu}")
        if self.gpu and self.tpu:
            raise ConfigError("kubernetes launcher: ask for GPUs or TPUs, not both "
                              f"(gpu={self.gpu}, tpu={self.tpu})")


def job_name(job: JobSpec) -> str:
    """A DNS-1123 name for one attempt (≤ 63 chars).

    >>> from datetime import UTC, datetime
    >>> job_name(JobSpec("Risk_XGB/2026", "m", "drift", datetime.now(UTC), 3))
    'fti-train-risk-xgb-2026-3'
    """
    base = re.sub(r"[^a-z0-9-]+", "-", f"fti-train-{job.job_id}".lower()).strip("-")
    suffix = f"-{job.attempt}"
    return base[: 63 - len(suffix)].rstrip("-") + suffix


class KubernetesJobLauncher:
    """Submits each attempt as a Kubernetes Job through `kubectl` (which must be configured)."""

    def __init__(self, config: KubernetesJobConfig, kubectl: str = "kubectl") -> None:
        self.config = config
        self.kubectl = kubectl

    def render(self, job: JobSpec) -> dict[str, Any]:
        """The ``batch/v1`` Job manifest for one attempt."""
        c = self.config
        labels = {"app.kubernetes.io/name": "fti-train", "fti/model": job.model,
                  "fti/job-id": job_name(job)[:63], **c.labels}
        pod: dict[str, Any] = {
            "restartPolicy": "Never",
            "containers": [self._container(job)],
        }
        selector, tolerations = self._placement()
        if selector:
            pod["nodeSelector"] = selector
        if tolerations:
            pod["tolerations"] = tolerations
        if c.service_account:
            pod["serviceAccountName"] = c.service_account
        spec: dict[str, Any] = {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": c.ttl_seconds_after_finished,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        }
        if c.active_deadline_s is not None:
            spec["activeDeadlineSeconds"] = c.active_deadline_s
        annotations = {"fti/reason": job.reason, "fti/attempt": str(job.attempt),
                       "fti/requested-at": job.requested_at.isoformat()}
        return {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": job_name(job), "namespace": c.namespace, "labels": labels,
                         "annotations": annotations},
            "spec": spec,
        }

    def render_yaml(self, job: JobSpec) -> str:
        """The manifest as YAML, as `kubectl apply -f -` reads it."""
        return yaml.safe_dump(self.render(job), sort_keys=False)

    def _container(self, job: JobSpec) -> dict[str, Any]:
        c = self.config
        requests = {"cpu": c.cpu, "memory": c.memory}
        limits = {"memory": c.memory}
        if c.gpu:
            requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(c.gpu)
        if c.tpu:
            requests[TPU_RESOURCE] = limits[TPU_RESOURCE] = str(c.tpu)
        env_from = [{"configMapRef": {"name": c.config_map}}] if c.config_map else []
        if c.secret:
            env_from.append({"secretRef": {"name": c.secret}})
        device = "cuda" if c.gpu else "xla" if c.tpu else "cpu"
        container: dict[str, Any] = {
            "name": "train",
            "image": c.image,
            "command": ["fti", "train", "--model", job.model, "--reason", job.reason,
                        "--job-id", job.job_id],
            "env": [{"name": "FTI_TRAINING__DEVICE", "value": device}],
            "resources": {"requests": requests, "limits": limits},
        }
        if env_from:
            container["envFrom"] = env_from
        return container

    def _placement(self) -> tuple[dict[str, str], list[dict[str, str]]]:
        c = self.config
        selector = dict(c.node_selector)
        tolerations: list[dict[str, str]] = []
        if c.gpu:
            tolerations.append({"key": GPU_RESOURCE, "operator": "Exists",
                                "effect": "NoSchedule"})
        if c.tpu:
            selector.setdefault("cloud.google.com/gke-tpu-accelerator", c.tpu_accelerator)
            selector.setdefault("cloud.google.com/gke-tpu-topology", c.tpu_topology)
            tolerations.append({"key": TPU_RESOURCE, "operator": "Exists",
                                "effect": "NoSchedule"})
        return selector, tolerations

    def _kubectl_path(self) -> str:
        path = shutil.which(self.kubectl)
        if path is None:
            raise JobError(
                f"the kubernetes launcher needs {self.kubectl!r} on PATH, configured for your "
                "cluster (KUBECONFIG or in-cluster service account); install kubectl or use "
                "the local launcher (training.launcher: local)"
            )
        return path

    def launch(self, job: JobSpec) -> KubernetesJobHandle:
        """Apply the manifest with ``kubectl apply -f -``; JobError naming kubectl's error."""
        kubectl = self._kubectl_path()
        done = subprocess.run(
            [kubectl, "apply", "-f", "-"], input=self.render_yaml(job).encode(),
            capture_output=True, timeout=60, check=False,
        )
        if done.returncode != 0:
            raise JobError(f"kubectl apply of job {job_name(job)} failed "
                           f"(exit {done.returncode}): {done.stderr.decode(errors='replace')}")
        return KubernetesJobHandle(job, kubectl, self.config.namespace)


class KubernetesJobHandle:
    """A submitted Kubernetes Job, polled through ``kubectl get job -o json``."""

    def __init__(self, job: JobSpec, kubectl: str, namespace: str) -> None:
        self.job, self.kubectl, self.namespace = job, kubectl, namespace
        self.name = job_name(job)
        self.detail = ""
        self.log_location = f"kubectl logs -n {namespace} job/{self.name}"
        self.result: dict[str, Any] | None = None
        self._state: JobState | None = None

    def _kubectl(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([self.kubectl, "-n", self.namespace, *args],
                              capture_output=True, timeout=60, check=False)

    def poll(self) -> JobState | None:
        """"succeeded"/"failed" once the Job has a terminal condition, else None."""
        if self._state is not None:
            return self._state
        done = self._kubectl("get", "job", self.name, "-o", "json")
        if done.returncode != 0:
            return None  # transient API errors: ask again on the next poll
        status = json.loads(done.stdout or b"{}").get("status", {})
        if status.get("succeeded"):
            self._state, self.detail = "succeeded", "job succeeded"
        elif status.get("failed"):
            conditions = status.get("conditions") or [{}]
            self._state = "failed"
            self.detail = f"job failed: {conditions[-1].get('message', 'pod failed')}"
        return self._state

    def wait(self, timeout_s: float | None) -> JobState | None:
        """Poll every 5 s until the Job ends or `timeout_s` passes."""
        until = None if timeout_s is None else time.monotonic() + timeout_s
        while (state := self.poll()) is None:
            if until is not None and time.monotonic() >= until:
                return None
            time.sleep(5 if until is None else max(0.0, min(5, until - time.monotonic())))
        return state

    def cancel(self) -> None:
        """Delete the Job and its pods; it then counts as failed (cancelled)."""
        self._kubectl("delete", "job", self.name, "--ignore-not-found", "--wait=false")
        if self._state is None:
            self._state, self.detail = "failed", "cancelled"
