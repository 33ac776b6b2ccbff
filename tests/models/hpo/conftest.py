"""A tests-own rides project with three models to search, backfilled once per module: the
regression "tipper" (XGBoost) and "tipper_mlp" (MLP) on the tip amount, and the binary
"big_tipper" (XGBoost) on whether the tip was big. No broker: backfill writes the stores."""

from __future__ import annotations

import json
import random
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from fti.features.project.backfill import backfill
from fti.features.project.loader import Project, load_project
from fti.settings import Settings, TrainingSettings
from tests.flows.test_materialize import ride_events, write_project
from tests.models.jobs.test_model_job import tip_of
from tests.support import make_settings

#: One XGBoost thread and a few rounds: tiny fits on a shared 2-core machine.
MODELS = '''
from fti.features.project import Model

big_tips = Stream("big_tips", topic="{big}", event_time="ts",
    fields=[Field("ride_id"), Field("driver_id"), Field("rider_id"), Field("big", "int"),
            Field("ts", "timestamp")])
big_tip = Label("big_tip", stream=big_tips, value="big")
big_model = FeatureView("big_model", label=big_tip, groups=[drivers, riders], ttl="1d")

tipper = Model("tipper", view=tip_model, task="regression", trainer="xgboost",
               params={{"n_estimators": 40, "max_depth": 3, "seed": 3, "n_jobs": 1}})
big_tipper = Model("big_tipper", view=big_model, task="binary", trainer="xgboost",
                   params={{"n_estimators": 40, "max_depth": 3, "seed": 3, "n_jobs": 1}})
tipper_mlp = Model("tipper_mlp", view=tip_model, task="regression", trainer="mlp",
                   params={{"epochs": 3, "patience": 3, "hidden_sizes": [16], "seed": 1}})
'''
RIDES = 1500


@dataclass(frozen=True)
class Rides:
    settings: Settings
    project: Project


@pytest.fixture(scope="module")
def rides(tmp_path_factory: pytest.TempPathFactory) -> Rides:
    tmp = tmp_path_factory.mktemp("hpo")
    settings = make_settings("127.0.0.1:9", tmp / "data",
                             training=TrainingSettings(device="cpu"))
    suffix = uuid.uuid4().hex[:8]
    directory = tmp / "project"
    write_project(directory, f"rides-{suffix}", f"tips-{suffix}")
    with (directory / "definitions.py").open("a") as handle:
        handle.write(MODELS.format(big=f"big-{suffix}"))
    project = load_project(directory)
    events = ride_events(RIDES, seed=17)
    rng = random.Random(5)
    tips = [{"ride_id": r["ride_id"], "driver_id": r["driver_id"], "rider_id": r["rider_id"],
             "tip": tip_of(r, rng), "ts": r["ts"]} for r in events]
    big = [{**t, "big": int(t["tip"] > 1.2)} for t in tips]  # about half
    for name, rows in (("rides", events), ("tips", tips), ("big", big)):
        (tmp / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    backfill(settings, project.streams["rides"], list(project.groups.values()), [],
             [tmp / "rides.jsonl"])
    backfill(settings, project.streams["tips"], [], [project.labels["tip"]],
             [tmp / "tips.jsonl"])
    backfill(settings, project.streams["big_tips"], [], [project.labels["big_tip"]],
             [tmp / "big.jsonl"])
    return Rides(settings, project)


@pytest.fixture
def fresh(rides: Rides, tmp_path: Path) -> Settings:
    """The module's settings on a copy of its backfilled data dir: this test's records and
    registry only."""
    shutil.copytree(rides.settings.data_dir, tmp_path / "data")
    return rides.settings.model_copy(update={"data_dir": tmp_path / "data"})
