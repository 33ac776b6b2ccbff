"""Search records: what `fti tune` found, one JSON file per run under ``data_dir/hpo``.

`best_params_from` reads the newest record of a model back, which is how
``fti train --project DIR --model NAME --params-from latest`` trains with what a search found.

>>> search_record_path(Path("/d"), "tipper", datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC))
PosixPath('/d/hpo/tipper-20260102T030405000006Z.json')
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from fti.features.dataset_records import DatasetRecord
from fti.models.errors import SearchError

#: Folder of ``data_dir`` holding search records.
HPO_DIR = "hpo"


class SearchRecord(BaseModel):
    """One search run as recorded on disk.

    ``metric`` is the task's primary metric on the validation split (``validation_mae``, ...),
    optimized in ``direction``; ``fixed_params`` and then ``best_params`` override the model's
    declared ``params``. ``dataset`` names the table versions and row hashes searched on.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    kind: str
    task: str = "binary"
    view: str = ""
    created_at: datetime
    metric: str = "validation_roc_auc"
    direction: Literal["maximize", "minimize"] = "maximize"
    backend: Literal["optuna", "ray"] = "optuna"
    sampler: str
    seed: int
    n_trials: int
    timeout_s: float | None
    fixed_params: dict[str, Any] = {}
    best_params: dict[str, Any]
    best_value: float
    trials: list[dict[str, Any]]
    pruned: int
    duration_s: float
    dataset: DatasetRecord


def search_record_path(data_dir: Path, model: str, created_at: datetime) -> Path:
    """Where the record of a search of ``model`` started at ``created_at`` is written."""
    stamp = created_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return Path(data_dir) / HPO_DIR / f"{model}-{stamp}.json"


def write_search_record(path: Path, record: SearchRecord) -> None:
    """Write ``record`` to ``path`` atomically (readers never see half a record)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(record.model_dump_json(indent=2))
    os.replace(temp, path)


def search_records(data_dir: Path, model: str) -> list[Path]:
    """The record files of ``model`` under ``data_dir/hpo``, oldest first."""
    folder = Path(data_dir) / HPO_DIR
    stamps = sorted(folder.glob(f"{model}-*.json")) if folder.is_dir() else []
    return [p for p in stamps if p.stem[len(model) + 1 :][:8].isdigit()]


def load_search_record(path: Path) -> SearchRecord:
    """Read one search record."""
    path = Path(path)
    if not path.is_file():
        raise SearchError(f"search record {path} not found")
    return SearchRecord.model_validate_json(path.read_text())


def best_params_from(data_dir: Path, model: str, ref: str = "latest") -> dict[str, Any]:
    """The overrides a search found for ``model`` (its fixed parameters and best ones), from its
    newest record (``ref="latest"``) or the record file ``ref`` (a path, or a file name in
    ``data_dir/hpo``)."""
    if ref == "latest":
        found = search_records(data_dir, model)
        if not found:
            raise SearchError(
                f"no search record of {model} in {Path(data_dir) / HPO_DIR}; run "
                f"`fti tune --project DIR --model {model}` first, or train without --params-from"
            )
        path = found[-1]
    else:
        path = Path(ref) if Path(ref).is_file() else Path(data_dir) / HPO_DIR / ref
    record = load_search_record(path)
    if record.model != model:
        raise SearchError(f"search record {path} is of model {record.model!r}, not {model!r}")
    return record.fixed_params | record.best_params
