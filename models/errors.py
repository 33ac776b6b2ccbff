"""Errors of the model layer: trainers, evaluation, hyperparameter search, jobs, registry.

Every class here is an `fti.errors.FtiError` through `ModelError`, so a caller may catch the
one it expects, every model error, or anything fti raises on purpose. Registry errors are also
the core `fti.errors.RegistryError`, which the CLI and the registry itself catch.
"""

from fti.errors import FtiError, RegistryError

__all__ = [
    "EvaluationError",
    "JobError",
    "ModelError",
    "SearchError",
    "TrainerError",
    "VersionExistsError",
]


class ModelError(FtiError):
    """Root of the model layer's errors."""


class TrainerError(ModelError):
    """A trainer cannot fit, save, load or score: an empty validation split, a feature matrix of
    the wrong shape, a model file of another format or feature set."""


class EvaluationError(ModelError):
    """Metrics, slices, importance or plots were asked of data they cannot be computed on."""


class SearchError(ModelError):
    """A hyperparameter search cannot run or found nothing, or its record is missing."""


class JobError(ModelError):
    """A training or search job cannot start: wrong feature view, a busy work dir, kubectl."""


class VersionExistsError(ModelError, RegistryError):
    """The registry version number asked for is already taken."""
