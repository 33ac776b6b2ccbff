"""The search on Ray Tune (the `ray` extra): a local Ray instance with 2 CPUs runs the same
trials as `fti tune` (OptunaSearch sampler, ASHA pruning), the record is written like the
in-process one, and training with ``params_from="latest"`` registers what it found.

Marked slow: it starts a Ray instance (GCS, raylet, workers); about 45 s on an idle 2-core
machine, two to three minutes when other jobs load it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray  # the `ray` extra, which `make test` installs: a missing one fails here

from fti.models.hpo.job import run_search_job
from fti.models.hpo.records import best_params_from, search_records
from fti.models.hpo.search import SPACES
from fti.models.jobs.model_job import run_model_job
from fti.models.registry import ModelRegistry
from fti.settings import Settings
from tests.models.hpo.conftest import Rides


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local Ray instance on 2 CPUs, for this module."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_ray_tune_search_on_two_cpus_is_recorded_and_trained_with(
    rides: Rides, fresh: Settings
) -> None:
    record = run_search_job(fresh, rides.project, "tipper", n_trials=4, seed=2,
                            sampler="tpe", backend="ray")

    assert ray.cluster_resources().get("CPU") == 2
    assert record.backend == "ray" and record.metric == "validation_mae"
    assert len(record.trials) == 4 and record.pruned <= 3
    complete = [t for t in record.trials if t["state"] == "COMPLETE"]
    assert complete and all(t["value"] > 0 for t in complete)
    assert len({tuple(sorted(t["params"].items())) for t in record.trials}) == 4
    assert set(record.best_params) == {d.name for d in SPACES["xgboost"]}
    assert record.best_value == min(t["value"] for t in complete)
    assert len(search_records(fresh.data_dir, "tipper")) == 1
    assert best_params_from(fresh.data_dir, "tipper") == record.best_params

    result = run_model_job(fresh, rides.project, "tipper", params_from="latest")
    params = ModelRegistry(fresh.registry_location).get("tipper", result.version).params
    for name, value in record.best_params.items():
        assert params[name] == pytest.approx(value), name
