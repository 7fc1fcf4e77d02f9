"""Where the story of a request or job is read from: job records and the router's JSON logs.

Each source answers for one id with what it knows, or None. Today that is
the jobs backend's record (state, attempts, progress, last error, times)
and the router's own log lines for a request id (the pod it went to, each
retry, the status and duration). Traces are a third source to come: it
implements ``RequestSource`` and is appended to the server's list.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from ttsfleet.jobs.backend import JobBackend

# Only the end of each log file is read: the recent past, at a bounded cost.
TAIL_BYTES = 16 * 1024 * 1024


class RequestSource(Protocol):
    name: str

    async def find(self, request_id: str) -> Any:
        """What this source knows of the id (JSON-ready), or None."""


class JobRecords:
    """Job records from the jobs backend (`--jobs-backend`)."""

    name = "jobs"

    def __init__(self, backend: JobBackend) -> None:
        self._backend = backend

    async def find(self, request_id: str) -> Any:
        job = await self._backend.get(request_id)
        return None if job is None else job.public()


class RouterLog:
    """The router's JSON log lines (`--router-log`, e.g. a file its stderr is collected into)."""

    name = "router_log"

    def __init__(self, paths: Sequence[Path], tail_bytes: int = TAIL_BYTES) -> None:
        self._paths = tuple(paths)
        self._tail = tail_bytes

    def records(self) -> Iterator[dict[str, Any]]:
        """Every JSON object line in the files' tails, oldest first per file."""
        for path in self._paths:
            try:
                with path.open("rb") as stream:
                    size = stream.seek(0, 2)
                    stream.seek(max(size - self._tail, 0))
                    lines = stream.read().decode(errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    yield record

    async def recent(self) -> list[dict[str, Any]]:
        """All records, read off the event loop."""
        return await asyncio.to_thread(lambda: list(self.records()))

    async def find(self, request_id: str) -> Any:
        found = [r for r in await self.recent() if r.get("request_id") == request_id]
        return found or None
