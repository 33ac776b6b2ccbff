"""librdkafka's log lines through Python logging, one line per condition, not hundreds.

An unreachable broker makes librdkafka log a connection failure every few hundred
milliseconds per client; the filter here passes the first line of each condition (the
message with its numbers blanked) and then at most one a minute.
"""

from __future__ import annotations

import logging
import re
import threading
import time

#: Logger that receives every librdkafka client's log lines.
LIBRDKAFKA_LOGGER = "fti.librdkafka"
_NUMBERS = re.compile(r"\d+")


class OncePerCondition(logging.Filter):
    """Pass a record only if its condition was not logged within `every_s` seconds.

    >>> f = OncePerCondition(every_s=60.0)
    >>> rec = lambda msg: logging.LogRecord("x", 30, "", 0, msg, None, None)
    >>> f.filter(rec("Connect to 127.0.0.1:9092 failed after 1ms"))
    True
    >>> f.filter(rec("Connect to 127.0.0.1:9092 failed after 7ms"))
    False
    >>> f.filter(rec("Broker transport failure"))
    True
    """

    def __init__(self, every_s: float = 60.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._last: dict[tuple[int, str], float] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget every condition seen."""
        with self._lock:
            self._last.clear()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.levelno, _NUMBERS.sub("#", record.getMessage()))
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.every_s:
                return False
            if len(self._last) > 1000:  # bounded: forget old conditions
                self._last.clear()
            self._last[key] = now
        return True


def librdkafka_logger() -> logging.Logger:
    """The logger handed to every client as its `logger` property (rate-limited)."""
    logger = logging.getLogger(LIBRDKAFKA_LOGGER)
    if not any(isinstance(f, OncePerCondition) for f in logger.filters):
        logger.addFilter(OncePerCondition())
    return logger
