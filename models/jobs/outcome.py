"""What a training job hands back: its result, its progress lines and its registry events.

`announce` promotes a version that passed its gates and publishes the "registered" (and
"promoted") events; `TrainingResult` is what the CLI and the trainer service report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from fti.connectors.errors import ConnectorError
from fti.events import RegistryEvent
from fti.models.registry import CHAMPION, ModelRegistry, ModelVersion
from fti.settings import Settings

logger = logging.getLogger(__name__)

#: Steps a training job reports on its progress bar.
_STEPS = 7

Publish = Callable[[RegistryEvent], None]


@dataclass(frozen=True)
class TrainingResult:
    """What one training run produced and decided."""

    model: str
    version: int
    metrics: dict[str, Any]
    champion_version: int | None
    champion_metrics: dict[str, Any] | None
    promoted: bool
    reasons: list[str]
    dataset_version: int
    device: str
    duration_s: float
    trainer: str = "xgboost"
    #: Registry events delivered to Kafka; an event not delivered is named in `unpublished`.
    published: list[str] = field(default_factory=list)
    unpublished: str | None = None

    @classmethod
    def of(
        cls,
        version: ModelVersion,
        dataset_version: int,
        device: str,
        duration_s: float,
        trainer: str = "xgboost",
    ) -> TrainingResult:
        """The result of a run that registered ``version``."""
        return cls(
            model=version.model,
            version=version.version,
            metrics=version.metrics,
            champion_version=version.champion_version,
            champion_metrics=version.champion_metrics_on_same_test,
            promoted=version.promoted,
            reasons=list(version.gates.reasons),
            dataset_version=dataset_version,
            device=device,
            duration_s=duration_s,
            trainer=trainer,
        )


@dataclass
class JobSteps:
    """Logs one line per finished step and, when asked, advances a progress bar."""

    progress: bool
    bar: Any = field(default=None)

    def __post_init__(self) -> None:
        if self.progress:
            self.bar = tqdm(total=_STEPS, desc="training", unit="step")

    def done(self, message: str, *args: Any) -> None:
        logger.info(message, *args)
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def announce(
    settings: Settings, version: ModelVersion, publish: Publish | None, steps: JobSteps
) -> tuple[list[str], str | None]:
    """Promote a passing version, then publish "registered" (and "promoted") events.

    Return the events delivered and, when one was not, why (the version stays registered).
    """
    registry = ModelRegistry(settings.registry_location)
    events = [registry.event(version.model, version.version, "registered")]
    if version.promoted:
        # Promotion is automatic when the gates pass: the gates are the approver of record.
        why = f"gates passed (training triggered by {version.reason or 'manual'})"
        registry.approve(version.model, version.version, why, actor="fti-gates")
        registry.set_alias(version.model, CHAMPION, version.version, reason=why,
                           actor="fti-gates")
        events.append(registry.event(version.model, version.version, "promoted", CHAMPION))
    if publish is None:
        steps.done("not publishing registry events for %s v%d", version.model, version.version)
        return [], None
    published: list[str] = []
    for event in events:
        try:
            publish(event)
        except ConnectorError as ex:
            missing = [e.event for e in events if e.event not in published]
            problem = f"registry events {missing} of {version.model} v{version.version} were " \
                      f"NOT published: {ex}"
            logger.error("%s", problem)
            steps.done("registered %s v%d, events not published", version.model, version.version)
            return published, problem
        published.append(event.event)
    steps.done("published %s for %s v%d", published, version.model, version.version)
    return published, None
