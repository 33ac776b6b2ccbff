"""The one root exception of fti and its small family."""


class FtiError(Exception):
    """Root of every error fti raises on purpose."""


class ConfigError(FtiError):
    """A setting is unknown or invalid; raised at start-up."""


class EventError(FtiError):
    """An event failed validation; the message names the field and the rule."""


class RegistryError(FtiError):
    """The model registry refused an operation or found a corrupt artifact."""


class BrokerError(FtiError):
    """The embedded broker could not start or did not answer."""
