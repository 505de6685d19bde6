"""Structured application logs: one JSON object per line on stderr (DESIGN.md "Runtime shape")."""

from __future__ import annotations

import json
import logging
import os
import sys
import time


class JsonFormatter(logging.Formatter):
    def __init__(self, **fields: object) -> None:
        super().__init__()
        self.fields = fields

    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) +
               f".{int(record.msecs):03d}Z", "level": record.levelname, "logger": record.name,
               "msg": record.getMessage(), "pid": os.getpid(), **self.fields}
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def setup_json_logging(level: str = "INFO", **fields: object) -> None:
    """Send every logger's records to stderr as JSON lines, with `fields` added to each."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(**fields))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
