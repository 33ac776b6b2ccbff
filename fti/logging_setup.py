"""Logging for every fti process: human text on a terminal, JSON lines for log shippers.

A JSON line carries `ts` (UTC, RFC 3339 with milliseconds), `level`, `logger`, `message`,
`exc` when there is a traceback, and every field passed with `extra=` (e.g. `service`,
`event`), so a service's lines can be filtered by what happened, not by wording.

>>> import io, json, logging
>>> root = logging.getLogger(); saved = (root.handlers[:], root.level)
>>> out = io.StringIO()
>>> configure_logging("INFO", "json", stream=out, service="features")
>>> logging.getLogger("fti.ops.demo").info("flow %s running", "features", extra={"event": "ready"})
>>> line = json.loads(out.getvalue())
>>> line["level"], line["logger"], line["message"], line["service"], line["event"]
('INFO', 'fti.ops.demo', 'flow features running', 'features', 'ready')
>>> root.handlers[:], _ = saved[0], root.setLevel(saved[1])
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Attributes every LogRecord has; anything else on a record came in through `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object per line, extras included.

    >>> record = logging.LogRecord("fti", logging.INFO, "", 0, "hi %s", ("you",), None)
    >>> record.created = 0.0
    >>> JsonFormatter().format(record)
    '{"ts": "1970-01-01T00:00:00.000Z", "level": "INFO", "logger": "fti", "message": "hi you"}'
    """

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON line."""
        ts = datetime.fromtimestamp(record.created, UTC)
        payload: dict[str, Any] = {
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=str)


class ServiceFilter(logging.Filter):
    """Add `service=<name>` to every record that does not name a service itself."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        """Tag the record; never drops one."""
        if not hasattr(record, "service"):
            record.service = self.service
        return True


def configure_logging(
    level: str | int = "INFO",
    fmt: LogFormat = "text",
    stream: TextIO | None = None,
    service: str | None = None,
) -> None:
    """Send the root logger's records to `stream` (stderr) as `fmt`, replacing handlers.

    `service` names the process in every record (a JSON field; text lines stay as they are).
    """
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', got {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    if service:
        handler.addFilter(ServiceFilter(service))
    logging.basicConfig(level=level, handlers=[handler], force=True)
