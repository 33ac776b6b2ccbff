"""Errors of the I/O layer: a backend (broker, store) refused or could not be reached."""

from fti.errors import BrokerError, FtiError

__all__ = ["BrokerError", "ConnectorError", "OfflineTableError"]


class ConnectorError(FtiError):
    """An I/O backend refused an operation or could not be reached."""


class OfflineTableError(ConnectorError):
    """An offline table, or the version of it asked for, does not exist."""
