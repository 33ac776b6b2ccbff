"""Sizes of the live-performance windows the monitor keeps per model version, and the shadow
scoring counters the inference flow updates.

The windows themselves (accuracy/F1 for classes, MAE/RMSE for values) are the monitor's
(`fti.flows.monitor`).
"""

from __future__ import annotations

from fti import metrics

DEFAULT_WINDOW = 1000
#: Versions a book keeps windows for; older ones are dropped (their series stay as they were).
DEFAULT_VERSIONS_KEPT = 5


def count_shadow(model: str, version: int, scored: int, agreed: int) -> None:
    """Count shadow predictions of a challenger version and how many agreed with the champion
    (`fti_shadow_predictions_total`, `fti_shadow_agreements_total`, both `{model, version}`)."""
    metrics.SHADOW_PREDICTIONS.labels(model, str(version)).inc(scored)
    metrics.SHADOW_AGREEMENTS.labels(model, str(version)).inc(agreed)
