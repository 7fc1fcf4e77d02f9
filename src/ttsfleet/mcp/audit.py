"""One JSON record per call: who, which tool, with what, how it ended, how long it took.

Records go to their own stream (a file, or stderr), never to stdout, which
the stdio transport owns. Parameters are copied with anything that looks
like a credential replaced, so the audit log can be shipped and read widely.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

REDACTED = "[redacted]"
SECRET_WORDS = ("token", "secret", "password", "authorization", "credential", "apikey", "api_key")


def redact(value: Any) -> Any:
    """``value`` with every mapping entry whose key names a secret replaced."""
    if isinstance(value, Mapping):
        return {
            str(key): REDACTED
            if any(word in str(key).lower() for word in SECRET_WORDS)
            else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


class Audit:
    """Writes audit records as JSON lines; safe to call from any thread."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def record(
        self,
        *,
        who: str | None,
        tool: str | None,
        params: Mapping[str, Any],
        outcome: str,
        started: float,
        correlation_id: str,
        detail: str = "",
    ) -> dict[str, Any]:
        """Writes one record; ``started`` is the call's time.time(); ``outcome`` ok/refused/error."""
        entry = {
            "timestamp": datetime.fromtimestamp(started, UTC).isoformat(),
            "correlation_id": correlation_id,
            "who": who,
            "tool": tool,
            "params": redact(params),
            "outcome": outcome,
            "detail": detail,
            "duration_ms": round((time.time() - started) * 1000, 3),
        }
        line = json.dumps(entry, sort_keys=True, default=str)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()
        return entry
