"""Errors of the feature layer: groups, views, validation rules, joins, splits, datasets.

Every class here is an `fti.errors.FtiError` through `FeatureError`, so a caller may catch the
one it expects, every feature error, or anything fti raises on purpose.
"""

from fti.errors import FtiError

__all__ = [
    "DefinitionError",
    "FeatureError",
    "FeatureGroupError",
    "FeatureViewError",
    "JoinError",
    "RuleError",
    "SchemaEvolutionError",
    "SplitError",
    "TrainingDataError",
]


class FeatureError(FtiError):
    """Root of the feature layer's errors."""


class FeatureGroupError(FeatureError):
    """A feature group declaration is invalid; the message names the group and the field."""


class SchemaEvolutionError(FeatureGroupError):
    """A group changed incompatibly without a new version."""


class FeatureViewError(FeatureError):
    """A feature view is inconsistent, or a catalog lookup failed; the message says which."""


class RuleError(FeatureError):
    """A rule or rule set is declared or used wrongly; the message names the rule."""


class JoinError(FeatureError):
    """A point-in-time join was asked for wrongly: its engine, tolerance or columns."""


class SplitError(FeatureError):
    """Split arguments are invalid (kind, fractions, gap, ranges), or a split would be empty."""


class TrainingDataError(FeatureError):
    """A training dataset cannot be read, found or trained on; the message says what to do."""


class DefinitionError(FeatureError):
    """A user project's definition is wrong; the message names the definition, the field and
    the fix, e.g. ``agg.sum("merchant") in group merchant_activity: merchant is a string; sum
    needs a number``."""
