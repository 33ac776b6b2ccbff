"""The online store in Redis (production backend); same contract as `SqliteOnlineStore`.

Layout, for a key prefix `P`:

- `P:online:{entity}` — one string per entity: ``event_time \\t event_id \\t features \\t window``,
  each part JSON text (JSON escapes tabs, so the split is unambiguous). One string rather than
  a hash because a batched read is then a single MGET (one command, one reply to parse; a
  pipeline of HMGETs costs the client ~20 µs per key), the Lua script reads the event time
  with a GETRANGE of the first bytes instead of the whole value, and `features` / `window`
  stay raw text that `OnlineRow` decodes only when read.
- `P:online-index` — a sorted set entity → event time, kept by the upsert script: `count()`
  is ZCARD and `newest_event_time()` its top score, with no KEYS/SCAN.

Upserts run one Lua script (EVALSHA; loaded once, again only after a NOSCRIPT) over the whole
batch inside one MULTI/EXEC pipeline: one round trip, atomic; per entity the newest event time
wins, an equal one overwrites. With `ttl_s`, reads judge expiry by event time like SQLite, and
Redis reclaims memory: each value expires at ``event_time + 2 * ttl_s`` (PXAT) and the script
trims index entries past that horizon; a reclaimed value then reads as "missing".
Keys of one batch span hash slots, so Redis Cluster would need per-slot batches (not done).

>>> import uuid
>>> store = RedisOnlineStore("redis://127.0.0.1:6379/0", f"doctest-{uuid.uuid4().hex}")
>>> store.upsert([OnlineRow("user-1", 2.0, "e-2", {"amount": 5.0}, [[2.0, 5.0, "DE", "e-2"]])])
>>> store.upsert([OnlineRow("user-1", 1.0, "e-1", {"amount": 9.0}, [])])  # older: ignored
>>> store.get_many(["user-1", "user-9"])["user-1"].event_id, store.count()
('e-2', 1)
>>> store.clear(); store.close()
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import redis

from fti.connectors.online.base import (
    Lookup,
    OnlineRow,
    OnlineStoreError,
    fresh_only,
    json_text,
    judge,
)

# KEYS: index, entity keys. ARGV: horizon_s ('' = keep forever), len(key prefix),
# then per entity: event_time, value, expire-at ms.
_UPSERT_LUA = """
local index, horizon, skip = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 2, #KEYS do
  local key, a = KEYS[i], (i - 2) * 3 + 3
  local t = tonumber(ARGV[a])
  local old = tonumber(string.match(redis.call('GETRANGE', key, 0, 40), '^([^\\t]+)\\t'))
  if old == nil or t >= old then
    if horizon then
      redis.call('SET', key, ARGV[a + 1], 'PXAT', ARGV[a + 2])
    else
      redis.call('SET', key, ARGV[a + 1])
    end
    redis.call('ZADD', index, ARGV[a], string.sub(key, skip + 1))
  end
end
if horizon then
  local now = redis.call('TIME')
  redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. (tonumber(now[1]) - horizon))
end
return 0
"""

_CHUNK = 500  # rows per script call; all chunks of a batch go in one MULTI/EXEC


def _masked(url: str) -> str:
    """`url` with its password hidden, for error messages.

    >>> _masked("redis://user:secret@host:6379/0")
    'redis://user:***@host:6379/0'
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _encode(row: OnlineRow) -> tuple[str, str]:
    """The event time (as text) and stored value of `row`."""
    t = float(row.event_time)
    if not math.isfinite(t):
        raise ValueError(f"event_time must be finite, got {t} (entity={row.entity!r})")
    stamp = repr(t)
    value = "\t".join((stamp, json_text(row.event_id), json_text(row.features),
                       json_text(row.window)))
    return stamp, value


def _decode(entity: str, raw: bytes) -> OnlineRow:
    """The row stored as `raw` (features and window decoded lazily)."""
    stamp, event_id, features, window = raw.split(b"\t", 3)
    if b"\\" in event_id:
        text = json.loads(event_id)
    else:  # a JSON string without escapes is its quoted text
        text = event_id[1:-1].decode()
    return OnlineRow.from_json(entity, float(stamp), text, features, window)


class RedisOnlineStore:
    """Online store in Redis under `key_prefix`; one object may be shared between threads."""

    def __init__(self, url: str, key_prefix: str, ttl_s: float | None = None) -> None:
        self.url = url
        self.key_prefix = key_prefix
        self.ttl_s = ttl_s
        self._keys = f"{key_prefix}:online:"
        self._index = f"{key_prefix}:online-index"
        self._client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)
        with self._errors("connect to"):
            self._client.ping()
            self._sha = self._client.script_load(_UPSERT_LUA)

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as ex:
            raise OnlineStoreError(
                f"cannot {action} the Redis online store at {_masked(self.url)}: {ex}"
                " (is Redis running? check settings.online.redis_url)"
            ) from ex

    def upsert(self, rows: Iterable[OnlineRow]) -> None:
        """Write rows atomically in one round trip; per entity, the newest event time wins."""
        encoded = [(row.entity, *_encode(row)) for row in rows]
        if not encoded:
            return
        horizon = 2 * self.ttl_s if self.ttl_s is not None else None
        head = ["" if horizon is None else repr(horizon), str(len(self._keys))]
        with self._errors("write to"):
            try:
                self._run(encoded, horizon, head)
            except redis.exceptions.NoScriptError:  # the server restarted or was flushed
                self._sha = self._client.script_load(_UPSERT_LUA)
                self._run(encoded, horizon, head)  # idempotent: the same rows, the same end

    def _run(self, encoded: list[tuple[str, str, str]], horizon: float | None,
             head: list[str]) -> None:
        pipe = self._client.pipeline(transaction=True)
        for start in range(0, len(encoded), _CHUNK):
            keys, args = [self._index], list(head)
            for entity, stamp, value in encoded[start : start + _CHUNK]:
                keys.append(self._keys + entity)
                # A value already past the horizon gets a past PXAT: Redis drops it at once.
                expire = "" if horizon is None else str(max(1, int((float(stamp) + horizon) * 1e3)))
                args += (stamp, value, expire)
            pipe.evalsha(self._sha, len(keys), *keys, *args)
        pipe.execute()

    def _read(self, entities: list[str]) -> dict[str, OnlineRow]:
        unique = list(dict.fromkeys(entities))
        prefix = self._keys
        with self._errors("read from"):
            values = self._client.mget([prefix + entity for entity in unique])
        pairs = zip(unique, values, strict=True)
        return {e: _decode(e, raw) for e, raw in pairs if raw is not None}

    def get_many(self, entities: list[str]) -> dict[str, OnlineRow]:
        """Batched read in one MGET; entities without a (fresh) row are absent."""
        return fresh_only(self._read(entities), self.ttl_s) if entities else {}

    def lookup(self, entities: list[str], now: float | None = None) -> dict[str, Lookup]:
        """Batched read with a status per entity (see `OnlineStore.lookup`)."""
        return judge(self._read(entities) if entities else {}, entities, self.ttl_s, now)

    def count(self) -> int:
        """Number of entities holding a value (from the index the script keeps)."""
        with self._errors("read from"):
            return int(self._client.zcard(self._index))

    def newest_event_time(self) -> float | None:
        """Event time of the freshest value, epoch seconds; None when empty."""
        with self._errors("read from"):
            top = self._client.zrange(self._index, -1, -1, withscores=True)
        return float(top[0][1]) if top else None

    def clear(self) -> None:
        """Delete every key of this store's prefix (tests, tear-down; uses SCAN, not hot)."""
        with self._errors("clear"):
            pattern = "".join(f"\\{c}" if c in "*?[]\\" else c for c in self.key_prefix)
            keys = list(self._client.scan_iter(match=f"{pattern}:online*", count=1000))
            for start in range(0, len(keys), 1000):
                self._client.delete(*keys[start : start + 1000])

    def close(self) -> None:
        """Close the connection pool (it reconnects if the store is used again)."""
        self._client.close()
