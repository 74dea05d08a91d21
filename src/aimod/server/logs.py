"""Structured logs: one JSON object per line on stderr, never a key, a secret or a request body.

Each request gets one ``request`` line (id, method, path, status, milliseconds, tenant, tier and, for refusals,
the error code); start-up and shutdown get their own lines. The tenant is its configured name, never its key.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

__all__ = ["JsonFormatter", "configure", "logger"]

logger = logging.getLogger("aimod.server")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line."""
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return json.dumps(entry, default=str)


def configure(level: int = logging.INFO) -> None:
    """Sends aimod.server's and uvicorn's logs to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("aimod.server", "uvicorn", "uvicorn.error"):
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.setLevel(level)
        log.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # the request lines replace it


def event(name: str, **fields: Any) -> None:
    """Logs one structured event."""
    logger.info(name, extra={"fields": fields})
