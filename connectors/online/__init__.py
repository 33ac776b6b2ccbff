"""Online stores: the contract (`base`), SQLite (embedded default) and Redis (production).

`open_online_store` picks the backend `settings.online` names.
"""

from __future__ import annotations

from fti.connectors.online.base import (
    Lookup,
    OnlineRow,
    OnlineStore,
    OnlineStoreError,
    fresh_only,
    freshness_seconds,
    judge,
)
from fti.connectors.online.redis import RedisOnlineStore
from fti.connectors.online.sqlite import SqliteOnlineStore
from fti.settings import Settings

__all__ = [
    "Lookup",
    "OnlineRow",
    "OnlineStore",
    "OnlineStoreError",
    "RedisOnlineStore",
    "SqliteOnlineStore",
    "fresh_only",
    "freshness_seconds",
    "judge",
    "open_online_store",
]


def open_online_store(settings: Settings) -> OnlineStore:
    """The online store `settings.online` names: SQLite at `settings.online_path`, or Redis.

    >>> from fti.settings import Settings
    >>> import tempfile
    >>> type(open_online_store(Settings(data_dir=tempfile.mkdtemp()))).__name__
    'SqliteOnlineStore'
    """
    online = settings.online
    if online.backend == "redis":
        return RedisOnlineStore(online.redis_url, online.key_prefix, ttl_s=online.ttl_s)
    return SqliteOnlineStore(settings.online_path, ttl_s=online.ttl_s)
