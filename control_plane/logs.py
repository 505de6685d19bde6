"""Structured logs: one JSON object per line (or plain text), and one access-log line per request.

Application code logs with ``extra={"fields": {...}}``; the formatter merges those fields into
the JSON object. The access log has a fixed set of keys: ts, remote, method, path, status, bytes,
duration_ms, user_agent.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from aiohttp.abc import AbstractAccessLogger


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
               + f".{int(record.msecs):03d}Z",
               "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            base += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return base


def setup(level: str = "info", fmt: str = "json", *, worker: int | None = None) -> None:
    """Logs to stderr; `worker` (a slot of a multi-worker serve) is added to every line's fields."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if worker is not None:
        handler.addFilter(_WorkerField(worker))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class _WorkerField(logging.Filter):
    def __init__(self, slot: int) -> None:
        super().__init__()
        self.slot = slot

    def filter(self, record: logging.LogRecord) -> bool:
        fields = getattr(record, "fields", None)
        record.fields = {**fields, "worker": self.slot} if isinstance(fields, dict) else {"worker": self.slot}
        return True


class AccessLogger(AbstractAccessLogger):
    """One structured line per request on the ``oca.control.access`` logger."""

    def log(self, request, response, elapsed: float) -> None:
        self.logger.info("access", extra={"fields": {
            "remote": request.remote, "method": request.method, "path": request.path,
            "status": response.status, "bytes": response.body_length,
            "duration_ms": round(elapsed * 1000, 3), "user_agent": request.headers.get("User-Agent")}})
