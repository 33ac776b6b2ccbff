"""Drift detection and the retrain policy, one algorithm per module; every public name here.

- `base`: the `Detector` contract, `DetectorSignal` (a signal and its evidence) and
  `BaseDetector` (grace, direction, window event ids) that every detector builds on;
- `adwin`, `page_hinkley`, `kswin`: River's streaming detectors behind that contract;
- `reference_window`: PSI / KS window tests against a training reference, on the
  statistics of `two_sample`;
- `detectors`: `DetectorConfig` and `build_detector`, the registry of kinds;
- `debounce`: `Debounced`, a signal counts only once confirmed;
- `observations`, `policy_config`, `retrain_policy`: what the policy observes, its
  configuration from settings, and `RetrainPolicy`, which turns both into retrain requests.
"""

from fti.models.drift.adwin import AdwinDetector
from fti.models.drift.base import (
    ID_HISTORY,
    BaseDetector,
    Detector,
    DetectorSignal,
    Direction,
    Finding,
)
from fti.models.drift.debounce import Debounced
from fti.models.drift.detectors import DetectorConfig, Kind, build_detector
from fti.models.drift.kswin import FastKSWIN, KswinDetector
from fti.models.drift.observations import (
    ERROR_RATE,
    LOG_SCALED,
    ChampionChanged,
    ErrorObserved,
    FeatureObserved,
    LabelSeen,
    Observation,
    ReferenceSet,
    monitored_value,
)
from fti.models.drift.page_hinkley import PageHinkleyDetector
from fti.models.drift.policy_config import MonitorConfig, monitor_config, retrain_config
from fti.models.drift.reference_window import ReferenceWindowTest
from fti.models.drift.retrain_policy import MAX_DETECTIONS, MAX_SIGNALS, Detection, RetrainPolicy
from fti.models.drift.two_sample import (
    bin_proportions,
    ks_pvalue,
    ks_statistic,
    population_stability_index,
    psi,
    quantile_edges,
)

__all__ = [
    "ERROR_RATE",
    "LOG_SCALED",
    "MAX_DETECTIONS",
    "MAX_SIGNALS",
    "ID_HISTORY",
    "AdwinDetector",
    "BaseDetector",
    "ChampionChanged",
    "Debounced",
    "Detection",
    "Detector",
    "DetectorConfig",
    "DetectorSignal",
    "Direction",
    "ErrorObserved",
    "FastKSWIN",
    "FeatureObserved",
    "Finding",
    "Kind",
    "KswinDetector",
    "LabelSeen",
    "MonitorConfig",
    "Observation",
    "PageHinkleyDetector",
    "ReferenceSet",
    "ReferenceWindowTest",
    "RetrainPolicy",
    "bin_proportions",
    "build_detector",
    "ks_pvalue",
    "ks_statistic",
    "monitor_config",
    "monitored_value",
    "population_stability_index",
    "psi",
    "quantile_edges",
    "retrain_config",
]
