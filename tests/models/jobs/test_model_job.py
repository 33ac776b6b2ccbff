"""A declared regression model in the tests' own rides project (not an example): backfilled
history, trained by `fti train --project`, gated on MAE, registered with its card, then served
by the inference flow of the project."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import numpy as np
import pytest

from fti.connectors.kafka.clients import ensure_topic_names
from fti.features.project.backfill import backfill
from fti.features.project.loader import Project, load_project
from fti.flows import inference
from fti.models.jobs.model_job import run_model_job
from fti.models.registry import ModelRegistry
from fti.models.serving import ChampionHolder
from fti.settings import Settings
from tests.flows.test_materialize import as_event, produce, ride_events, write_project
from tests.support import read_topic, running_flow, wait_for

MODELS = '''
from fti.features.project import Model

tipper = Model("tipper", view=tip_model, task="regression", trainer="xgboost",
               params={{"n_estimators": 150, "max_depth": 4, "learning_rate": 0.1, "seed": 3}},
               gates={{"mae": {max_mae}}}, max_regression=0.5)
'''


def tip_of(ride: dict, rng: random.Random) -> float:
    """The label the model can learn: half the fare per km (capped), plus a little noise."""
    return round(0.5 * min(ride["fare"] / max(ride["km"], 0.1), 20.0) + rng.gauss(0, 0.2), 3)


def rides_project(tmp_path: Path, settings: Settings, max_mae: float) -> Project:
    suffix = uuid.uuid4().hex[:8]
    directory = tmp_path / "project"
    write_project(directory, f"rides-{suffix}", f"tips-{suffix}")
    with (directory / "definitions.py").open("a") as handle:
        handle.write(MODELS.format(max_mae=max_mae))
    project = load_project(directory)
    ensure_topic_names(settings.kafka, project.topics())
    return project


def history(project: Project, settings: Settings, tmp_path: Path) -> list[dict]:
    rides = ride_events(3000, seed=17)
    rng = random.Random(5)
    tips = [{"ride_id": r["ride_id"], "driver_id": r["driver_id"], "rider_id": r["rider_id"],
             "tip": tip_of(r, rng), "ts": r["ts"]} for r in rides]
    (tmp_path / "rides.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rides))
    (tmp_path / "tips.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tips))
    backfill(settings, project.streams["rides"], list(project.groups.values()), [],
             [tmp_path / "rides.jsonl"])
    backfill(settings, project.streams["tips"], [], [project.labels["tip"]],
             [tmp_path / "tips.jsonl"])
    return rides


def test_a_regression_model_trains_is_gated_on_mae_and_is_served(
    settings: Settings, tmp_path: Path
) -> None:
    project = rides_project(tmp_path, settings, max_mae=1.0)
    rides = history(project, settings, tmp_path)
    events: list = []
    result = run_model_job(settings, project, "tipper", publish=events.append)
    assert result.promoted, result.reasons
    assert [e.event for e in events] == result.published == ["registered", "promoted"]
    assert result.trainer == "xgboost"
    assert {"mae", "rmse", "r2"} <= set(result.metrics)
    assert result.metrics["mae"] <= 1.0 and result.metrics["r2"] > 0.8, result.metrics
    registry = ModelRegistry(settings.registry_location)
    version = registry.get("tipper", result.version)
    assert version.params["task"] == "regression"
    assert version.params["feature_columns"] == project.models["tipper"].feature_columns()
    card = registry.artifact_path("tipper", result.version, "model_card.md").read_text()
    assert "mae" in card.lower() and "residual" in card.lower()

    # Served: new rides, one per driver and rider, so each sees only the backfilled state.
    holder = ChampionHolder(registry, "tipper")
    assert holder.refresh() and holder.current is not None
    drivers = sorted({r["driver_id"] for r in rides})
    riders = sorted({r["rider_id"] for r in rides})
    t = max(r["ts"] for r in rides) + 5_000
    fresh = [{**rides[i], "ride_id": f"live-{i}", "driver_id": d, "rider_id": riders[i],
              "ts": t + i} for i, d in enumerate(drivers)]
    assembler = inference.FeatureAssembler(settings, project.models["tipper"])
    rows = assembler.rows([as_event(r) for r in fresh])
    expected = holder.current.score(inference.matrix_of(rows, holder.current.features))
    produce(settings.kafka.bootstrap_servers, project.streams["rides"].topic,
            [json.dumps(r).encode() for r in fresh[:3]] + [b"\xff not json"]
            + [json.dumps(r).encode() for r in fresh[3:]])
    with running_flow(lambda stop: inference.get_flow(settings, project, {"tipper": holder},
                                                    stop)):
        wait_for(lambda: len(read_topic(settings.kafka, settings.topics.predictions, 0.2))
                 >= len(fresh), what="a prediction per ride")
    predictions = [json.loads(m.value()) for m in
                   read_topic(settings.kafka, settings.topics.predictions)]
    assert sorted(p["id"] for p in predictions) == sorted(r["ride_id"] for r in fresh)
    by_id = {p["id"]: p for p in predictions}
    for ride, score in zip(fresh, expected, strict=True):
        p = by_id[ride["ride_id"]]
        assert p["model"] == "tipper" and p["version"] == result.version
        assert p["score"] == pytest.approx(float(score), rel=1e-6)
        assert p["label"] == pytest.approx(float(score), rel=1e-6)  # regression: the value
    assert np.isfinite(expected).all()


def test_a_candidate_over_its_mae_gate_is_registered_but_not_promoted(
    settings: Settings, tmp_path: Path
) -> None:
    project = rides_project(tmp_path, settings, max_mae=0.01)
    history(project, settings, tmp_path)
    result = run_model_job(settings, project, "tipper")
    assert not result.promoted
    assert any(r.startswith("mae ") and "(gate max)" in r for r in result.reasons), result.reasons
    assert ModelRegistry(settings.registry_location).alias("tipper") is None


def test_unknown_model_names_the_declared_ones(settings: Settings, tmp_path: Path) -> None:
    project = rides_project(tmp_path, settings, max_mae=1.0)
    with pytest.raises(Exception, match="declares tipper"):
        run_model_job(settings, project, "nope")
