"""Structured (JSON) logs with the current request id and caller on every line.

The request id and the caller's identity (tenant) live in context variables,
so every log call made while a request is handled, in any module, carries
them without being passed around; so do the trace and span ids of
OpenTelemetry's current span, when tracing is on (see `tracing`).
"""

from __future__ import annotations

import contextvars
import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from ttsfleet import tracing

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
tenant: contextvars.ContextVar[str] = contextvars.ContextVar("tenant", default="")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        rid = request_id.get()
        if rid:
            record.request_id = rid
        who = tenant.get()
        if who:
            record.tenant = who
        for key, value in tracing.log_ids().items():
            setattr(record, key, value)
        return True


def configure(component: str, level: str = "INFO", json_output: bool = True) -> None:
    """Sends logs to stderr as JSON lines (or plain text for people at a terminal)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if json_output:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields={"component": component},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s {component} %(levelname)s %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
