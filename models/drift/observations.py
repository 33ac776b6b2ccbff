"""What the retrain policy observes: labels, errors, feature values, references, champions.

Plain frozen records, one per kind of observation (`Observation` is their union), and the
scale the monitor tracks each feature on (`monitored_value`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ERROR_RATE = "error_rate"  # the stream name of the live error rate (detectors, references)
LOG_SCALED = frozenset({"amount"})  # heavy-tailed features monitored as log1p(value)


def monitored_value(feature: str, value: float) -> float:
    """The value the monitor tracks for a raw feature (references must use the same scale).

    >>> monitored_value("amount", math.e - 1), monitored_value("hour_of_day", 13.0)
    (1.0, 13.0)
    """
    return math.log1p(max(value, 0.0)) if feature in LOG_SCALED else float(value)


@dataclass(frozen=True)
class LabelSeen:
    """A new label arrived."""


@dataclass(frozen=True)
class ErrorObserved:
    """A prediction met its label: `error` is 1 when the predicted label was wrong, 0 when
    right (classification), or the absolute error |predicted - actual| (regression); the
    error detectors watch its mean rise either way."""

    event_id: str
    version: int
    error: float


@dataclass(frozen=True)
class FeatureObserved:
    """One monitored value of `feature` (None: the config's `default_feature`)."""

    event_id: str
    value: float
    feature: str | None = None


@dataclass(frozen=True, eq=False)
class ReferenceSet:
    """The champion's training distribution of `feature` (or `error_rate`), monitored scale."""

    feature: str
    values: Sequence[float] | np.ndarray


@dataclass(frozen=True)
class ChampionChanged:
    """The registry promoted (or rolled back to) `version`."""

    version: int


Observation = LabelSeen | ErrorObserved | FeatureObserved | ReferenceSet | ChampionChanged
