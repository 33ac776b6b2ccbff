"""The monitor flow's side of the retrain policy (flows/monitor.py): monitored values of a
transaction, refused features, and detections counted per detector."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np
import pytest
from prometheus_client import REGISTRY

from fti.errors import ConfigError
from fti.events import Transaction
from fti.flows.monitor import apply_policy, feature_values, monitored_features
from fti.models.drift import monitored_value
from fti.settings import MonitorSettings, Settings, TrainingSettings
from tests.models.drift.test_retrain_policy_detectors import SHIFT, _feature, _gauss


def test_a_transaction_gives_one_value_per_monitored_feature() -> None:
    tx = Transaction(tx_id="t1", card_id="c", merchant_id="m", amount=99.0, currency="EUR",
                     country="DE", channel="online", ts=datetime(2026, 1, 1, 22, tzinfo=UTC))
    values = feature_values(tx, ["amount", "hour_of_day", "channel_code"])
    assert [(v.feature, v.tx_id) for v in values] == [
        ("amount", "t1"), ("hour_of_day", "t1"), ("channel_code", "t1")]
    assert values[0].value == monitored_value("amount", 99.0) == pytest.approx(np.log(100.0))
    assert values[1].value == 22.0


def test_the_flow_refuses_features_no_event_has() -> None:
    settings = Settings(monitor=MonitorSettings(drift_feature="merchant_risk"))
    with pytest.raises(ConfigError, match="merchant_risk.*choose from"):
        monitored_features(settings)


def test_the_policy_step_counts_detections_per_detector() -> None:
    model = f"m-{uuid.uuid4().hex[:8]}"
    settings = Settings(training=TrainingSettings(model_name=model),
                        monitor=MonitorSettings(grace_predictions=0, cooldown_s=0))
    step, state = apply_policy(settings), None
    for obs in _feature(_gauss(13, *SHIFT)):
        state, _ = step(state, obs)
    counted = REGISTRY.get_sample_value(
        "fti_drift_detections_total", {"model": model, "detector": "amount_adwin"})
    assert counted == state.detections_total >= 1
