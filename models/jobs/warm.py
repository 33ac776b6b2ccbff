"""A training process started before its job: it loads the training code, then waits for
the job on stdin, so a retrain starts without a Python start-up and its imports (seconds on
a busy machine: 5-15 s measured for `fti train`, against ~2 s of training on the demo).

The trainer service's `LocalProcessLauncher` keeps one such process ready and hands it the
next job as one JSON line; a process whose stdin closes before a job came exits quietly.

>>> import io
>>> read_job(io.StringIO('{"project": "p", "model": "m", "reason": "drift", "job_id": "j"}\\n'))
{'project': 'p', 'model': 'm', 'reason': 'drift', 'job_id': 'j'}
>>> read_job(io.StringIO("")) is None
True
"""

from __future__ import annotations

import importlib
import json
from typing import IO, Any

from fti.errors import ConfigError

#: What a job needs and takes seconds to import; matplotlib draws the report after the
#: version serves, so it is loaded here too rather than in a job's time.
WARM_MODULES: tuple[str, ...] = (
    "fti.models.jobs.model_job", "fti.models.trainers.xgboost", "fti.connectors.offline.store",
    "fti.connectors.kafka.publisher", "fti.models.evaluation.plots",
)
#: Keys of the JSON line that hands a job to a waiting process.
JOB_KEYS: tuple[str, ...] = ("project", "model", "reason", "job_id")


def warm_up(modules: tuple[str, ...] = WARM_MODULES) -> None:
    """Import what a training job needs."""
    for name in modules:
        importlib.import_module(name)


def read_job(stream: IO[str]) -> dict[str, Any] | None:
    """The job handed over on `stream` (one JSON line), or None when it closed first."""
    line = stream.readline()
    if not line.strip():
        return None
    try:
        job = json.loads(line)
    except ValueError as ex:
        raise ConfigError(f"a warm training process got no JSON job: {ex}") from None
    if not isinstance(job, dict) or any(key not in job for key in JOB_KEYS):
        raise ConfigError(f"a warm training process needs a JSON object with {list(JOB_KEYS)}, "
                          f"got {line.strip()[:200]!r}")
    return {key: job[key] for key in JOB_KEYS}
