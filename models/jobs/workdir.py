"""Work directories of training jobs: temporary, or stable so a killed fit can resume.

A resumable trainer (one that checkpoints, like the MLP) fits in
``data_dir/jobs/<model>-<hash>``, where the hash covers the trainer kind, its hyperparameters and
the rows of every split. A job killed mid-fit and run again on the same data therefore finds its
checkpoints; a job on new data or with new hyperparameters starts afresh. The directory is
locked while a job uses it and removed once the job's body succeeded.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fti.features.dataset_records import TrainingDataset
from fti.models.errors import JobError
from fti.settings import Settings

#: Trainer kinds that checkpoint, so their work directory is kept when a job fails.
RESUMABLE_KINDS: frozenset[str] = frozenset({"mlp"})
#: Folder of ``data_dir`` holding the work directories of resumable jobs.
JOBS_DIR = "jobs"


def workdir_key(model: str, kind: str, params: dict[str, Any], dataset: TrainingDataset) -> str:
    """Name of a job's work directory: the model and a hash of its trainer, hyperparameters
    and the rows of each split, so a rerun on the same data finds the same directory."""
    identity = {
        "kind": kind,
        "hyperparameters": params,
        "splits": {name: stats.rows_sha256 for name, stats in dataset.record.splits.items()},
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode())
    return f"{model}-{digest.hexdigest()[:16]}"


@contextmanager
def job_workdir(settings: Settings, model: str, kind: str, params: dict[str, Any],
                dataset: TrainingDataset) -> Iterator[Path]:
    """A work directory for one fit; kept after a failure only for resumable trainer kinds.

    Resumable kinds get ``data_dir/jobs/<workdir_key>``, locked against a second job on the same
    data and removed when the body succeeds; other kinds get a temporary directory.
    """
    if kind not in RESUMABLE_KINDS:
        with tempfile.TemporaryDirectory(prefix="fti-train-") as temp:
            yield Path(temp)
        return
    path = settings.data_dir / JOBS_DIR / workdir_key(model, kind, params, dataset)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as ex:
            raise JobError(
                f"another training job of {model} on the same dataset is running in {path}; "
                "wait for it to finish"
            ) from ex
        yield path
    shutil.rmtree(path, ignore_errors=True)
